//! Image references as users type them (`host:port/repo:tag@sha256:...`): parsed or
//! refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(r) = registry::reference::parse(s) {
            let _ = registry::reference::repository_key(&r);
            let _ = registry::reference::store_tag(&r);
        }
        let _ = store::reference::normalize(s);
    }
});
