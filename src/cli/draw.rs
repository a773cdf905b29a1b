//! `tirage draw`: the offline draw from the inputs of DRAW-SPEC section 10.

use std::io::Write as _;
use std::process::ExitCode;

use super::{EXIT_OK, malformed, read_input};
use crate::draw::bundle::RawInputs;
use crate::draw::run_draw;

#[derive(Debug, clap::Args)]
pub struct DrawArgs {
    /// The inputs (JSON: window_id, beacon, beacon_value, seed_commitment, secret,
    /// entries, slots), or `-` for standard input. Entries and slots may be in any order.
    #[arg(long, value_name = "INPUTS")]
    pub input: String,
    /// Where to write the bundle; `-` (the default) writes to standard output.
    #[arg(long, value_name = "BUNDLE", default_value = "-")]
    pub out: String,
    /// Indent the JSON for reading by eye.
    #[arg(long)]
    pub pretty: bool,
}

pub fn run(args: DrawArgs) -> ExitCode {
    let data = match read_input(&args.input) {
        Ok(data) => data,
        Err(e) => return malformed(e),
    };
    let raw: RawInputs = match serde_json::from_slice(&data) {
        Ok(raw) => raw,
        Err(e) => return malformed(format!("{} is not valid draw inputs: {e}", args.input)),
    };
    drop(data);
    let bundle = match raw.decode().and_then(run_draw) {
        Ok(bundle) => bundle,
        Err(e) => return malformed(format!("{} is not valid draw inputs: {e}", args.input)),
    };
    let written = if args.out == "-" {
        write_json(std::io::stdout().lock(), &bundle, args.pretty)
    } else {
        std::fs::File::create(&args.out)
            .map_err(|e| e.to_string())
            .and_then(|file| write_json(file, &bundle, args.pretty))
    };
    match written {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => malformed(format!("cannot write {}: {e}", args.out)),
    }
}

fn write_json(
    out: impl std::io::Write,
    value: &impl serde::Serialize,
    pretty: bool,
) -> Result<(), String> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let result = if pretty {
        serde_json::to_writer_pretty(&mut out, value)
    } else {
        serde_json::to_writer(&mut out, value)
    };
    result.map_err(|e| e.to_string())?;
    writeln!(out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}
