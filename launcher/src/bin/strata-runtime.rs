//! `strata-runtime`: an OCI runtime with runc's command line (see `launcher::oci`).

fn main() -> std::process::ExitCode {
    launcher::oci::main()
}
