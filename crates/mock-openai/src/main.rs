//! `mock-openai [--listen ADDR] [--name NAME]`: serves the recording OpenAI mock until killed.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use mock_openai::MockUpstream;

const USAGE: &str = "usage: mock-openai [--listen ADDR] [--name NAME]\n\n\
Serves a recording mock of the OpenAI API (HTTP/1.1 and h2c). Prints\n\
`listening http://HOST:PORT` once bound. ADDR defaults to 127.0.0.1:0.\n\
The request header x-mock-behavior selects a fault: slow-sse, hang, reset,\n\
garbage, status:NNN, drop-mid-stream, delay:MS.\n";

fn parse_args() -> Result<Option<(SocketAddr, String)>, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut name = "mock".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match key.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" | "--name" => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or(format!("{key} needs a value"))?;
                if key == "--listen" {
                    listen = value.parse().map_err(|e| format!("--listen {value:?}: {e}"))?;
                } else {
                    name = value;
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((listen, name)))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, name) = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mock-openai: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mock = match MockUpstream::bind(&name, listen).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mock-openai: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {}", mock.base_url());
    let _ = out.flush();
    drop(out);
    let _ = tokio::signal::ctrl_c().await;
    drop(mock);
    ExitCode::SUCCESS
}
