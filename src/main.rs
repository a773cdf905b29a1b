//! The `tirage` command line: a thin shell over the library.
//!
//! `serve` and `migrate` need the `server` feature (on by default); `verify`, `draw`,
//! `verify-attestation` and `verify-log` are the auditor's tools and build without it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The service makes many small, short-lived allocations on each request, from the
/// runtime's threads and the registrar's; mimalloc serves them with less work than
/// the system's allocator (measured in `docs/benchmarks.md`, fourteenth round).
#[cfg(feature = "server")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tirage",
    version,
    about = "A fair, verifiable lottery for appointments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (API, pages, background jobs).
    #[cfg(feature = "server")]
    Serve(Box<tirage::config::ServeArgs>),
    /// Create or upgrade the database schema, then exit.
    #[cfg(feature = "server")]
    Migrate(tirage::config::DatabaseArgs),
    /// Run a whole window with synthetic applicants, for a first look.
    #[cfg(feature = "server")]
    Demo(tirage::demo::DemoArgs),
    /// Re-compute a published draw bundle and report every value that differs.
    Verify(tirage::cli::verify::VerifyArgs),
    /// Run a draw offline from its inputs (DRAW-SPEC section 10) and write the bundle.
    Draw(tirage::cli::draw::DrawArgs),
    /// Check an attestation's signature against the service's published key.
    VerifyAttestation(tirage::cli::attestation::VerifyAttestationArgs),
    /// Re-compute the audit log's hash chain and name the first edited or missing event.
    VerifyLog(tirage::cli::audit_log::VerifyLogArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "server")]
        Command::Serve(args) => tirage::app::serve_main(*args),
        #[cfg(feature = "server")]
        Command::Migrate(args) => tirage::app::migrate_main(args),
        #[cfg(feature = "server")]
        Command::Demo(args) => tirage::demo::demo_main(args),
        Command::Verify(args) => tirage::cli::verify::run(args),
        Command::Draw(args) => tirage::cli::draw::run(args),
        Command::VerifyAttestation(args) => tirage::cli::attestation::run(args),
        Command::VerifyLog(args) => tirage::cli::audit_log::run(args),
    }
}
