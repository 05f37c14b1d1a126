//! strata's layer store: blobs by digest, extracted layers by chainID, images and
//! containers on disk. Knows nothing of FUSE; the launcher mounts what it lays out.
