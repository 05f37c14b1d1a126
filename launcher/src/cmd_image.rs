//! `strata image ...`, `strata diff`, `strata commit`, `strata export`: the store's commands.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use store::Store;
use store::export::ArchiveFormat;
use store::ops::Removed;
use store::tarwrite::TreeKind;

/// `strata image` subcommands.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// Import a docker-archive tar, an OCI layout dir or an oci-archive tar. A layer
    /// expanding past $STRATA_MAX_LAYER_SIZE (default 64G; 0: no limit) is refused.
    Import {
        /// The archive or layout.
        path: PathBuf,
        /// Also tag the image NAME:TAG.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Make an image from a rootfs directory (one layer, or stacked on --parent).
    Create {
        /// The rootfs directory.
        #[arg(long = "from-dir", value_name = "DIR")]
        from_dir: PathBuf,
        /// Stack the layer on this image.
        #[arg(long)]
        parent: Option<String>,
        /// NAME:TAG of the new image.
        reference: String,
    },
    /// List images.
    Ls {
        /// Only print image ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print an image's id, tags, layers (diffID, chainID), size and config as JSON.
    Inspect {
        /// NAME[:TAG], id or id prefix.
        image: String,
    },
    /// Remove tags / images.
    Rm {
        /// NAME[:TAG], id or id prefix.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Point NAME:TAG at an image.
    Tag {
        /// Existing image.
        image: String,
        /// New NAME:TAG.
        reference: String,
    },
    /// Remove layers and blobs no image uses.
    Prune,
    /// Write an image as an oci-archive or docker-archive tar.
    Export {
        /// NAME[:TAG], id or id prefix.
        image: String,
        /// Archive format.
        #[arg(long, value_enum, default_value_t = ExportFormat::OciArchive)]
        format: ExportFormat,
        /// Output file.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

/// Archive formats of `strata image export`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// OCI image layout in a tar.
    OciArchive,
    /// `docker save` format.
    DockerArchive,
}

/// Arguments of `strata diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// Container name or id.
    pub container: String,
}

/// Arguments of `strata commit`.
#[derive(Args)]
pub struct CommitArgs {
    /// Container name or id.
    pub container: String,
    /// NAME:TAG of the new image.
    pub reference: String,
}

/// Arguments of `strata export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Container name or id.
    pub container: String,
    /// Output tar file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

fn human(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn print_image(img: &store::Image) {
    println!("{}  {}", img.id, img.tags.join(" "));
}

/// Runs a `strata image` subcommand.
pub fn image(root: Option<PathBuf>, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    match cmd {
        ImageCommand::Import { path, tag } => {
            let imgs = store::import::import(&store, &path, tag.as_deref())
                .with_context(|| format!("import {}", path.display()))?;
            imgs.iter().for_each(print_image);
        }
        ImageCommand::Create {
            from_dir,
            parent,
            reference,
        } => {
            let parent = parent.map(|p| store.resolve_image(&p)).transpose()?;
            let img = store::new_image::image_from_tree(
                &store,
                &from_dir,
                TreeKind::Rootfs,
                parent.as_ref(),
                &reference,
                &format!("strata image create --from-dir {}", from_dir.display()),
            )?;
            print_image(&img);
        }
        ImageCommand::Ls { quiet } => {
            let imgs = store.images()?;
            if quiet {
                imgs.iter().for_each(|i| println!("{}", short(&i.id)));
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<40} {:<12} {:>6} {:>10}",
                "REFERENCE", "IMAGE ID", "LAYERS", "SIZE"
            );
            for i in &imgs {
                let refs = if i.tags.is_empty() {
                    vec!["<none>".to_string()]
                } else {
                    i.tags.clone()
                };
                for r in refs {
                    println!(
                        "{:<40} {:<12} {:>6} {:>10}",
                        r,
                        short(&i.id),
                        i.layers.len(),
                        human(i.size())
                    );
                }
            }
        }
        ImageCommand::Inspect { image } => {
            let img = store.resolve_image(&image)?;
            let v = serde_json::json!({
                "id": img.id,
                "tags": img.tags,
                "config_digest": img.config_digest,
                "created": img.created,
                "size": img.size(),
                "layers": img.layers,
                "lower_dirs": store.lower_dirs(&img)?,
                "config": img.raw_config,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ImageCommand::Rm { images } => {
            let mut failed = false;
            for r in images {
                match store.remove_image(&r) {
                    Ok(Removed::Untagged(t)) => println!("untagged {t}"),
                    Ok(Removed::Deleted(id)) => println!("deleted {id}"),
                    Err(e) => {
                        eprintln!("strata: image rm {r}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
        ImageCommand::Tag { image, reference } => {
            let t = store.tag_image(&image, &reference)?;
            println!("{t}");
        }
        ImageCommand::Prune => {
            let p = store.prune()?;
            println!("removed {} layers, {} blobs", p.layers.len(), p.blobs.len());
        }
        ImageCommand::Export {
            image,
            format,
            output,
        } => {
            let f = match format {
                ExportFormat::OciArchive => ArchiveFormat::OciArchive,
                ExportFormat::DockerArchive => ArchiveFormat::DockerArchive,
            };
            store::export::export_image(&store, &image, f, &output)
                .with_context(|| format!("export {image} to {}", output.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata diff`.
pub fn diff(root: Option<PathBuf>, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let c = store.container(&args.container)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    for ch in store.container_changes(&c)? {
        writeln!(out, "{} {}", ch.kind.letter(), ch.path)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata commit`.
pub fn commit(root: Option<PathBuf>, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let img = store::new_image::commit_container(&store, &args.container, &args.reference)
        .with_context(|| format!("commit {}", args.container))?;
    print_image(&img);
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata export`.
pub fn export(root: Option<PathBuf>, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let c = store.container(&args.container)?;
    store.export_container_to_file(&c, &args.output)?;
    Ok(ExitCode::SUCCESS)
}
