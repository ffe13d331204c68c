//! The `residency-proxy` command line: `serve`, `check`, `explain`, `catalog show|diff`, `audit`.

use crate::config::{raw::LogFormat, Config};
use crate::explain;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "residency-proxy",
    version,
    about = "A reverse proxy that enforces OpenAI data residency and zero-data-retention policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the embedded default config when no --config is given).
    Serve {
        #[arg(long, env = "RESIDENCY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a config and its catalog; print every problem with its place.
    Check {
        #[arg(long, env = "RESIDENCY_CONFIG")]
        config: PathBuf,
    },
    /// What a project may call under a catalog, and what changes between two catalogs.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Work with the decision audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the policy on one request offline and print the decision as JSON (exit 3 on deny).
    Explain {
        #[arg(long, env = "RESIDENCY_CONFIG")]
        config: PathBuf,
        /// Use this project instead of selecting one from the headers.
        #[arg(long)]
        project: Option<String>,
        /// A request header, `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// The request body: a file, or `-` for standard input.
        #[arg(long)]
        body: Option<PathBuf>,
        /// HTTP method, e.g. POST.
        method: String,
        /// Request path with optional query, e.g. /v1/chat/completions.
        path: String,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Every operation allowed or refused for one project, with the refusing rule, the
    /// eligible models and the body markers; from the same decision code the proxy runs.
    Show {
        /// A config file; with --project. (--catalog, when given, takes precedence over a
        /// config named by RESIDENCY_CONFIG.)
        #[arg(long, env = "RESIDENCY_CONFIG")]
        config: Option<PathBuf>,
        /// The configured project to show.
        #[arg(long, requires = "config")]
        project: Option<String>,
        /// A catalog JSON file or an embedded edition name; with --region and --retention.
        #[arg(long)]
        catalog: Option<String>,
        /// A region id of the catalog (with --catalog).
        #[arg(long, requires = "catalog")]
        region: Option<String>,
        /// zdr, modified_abuse_monitoring or default (with --catalog).
        #[arg(long, requires = "catalog")]
        retention: Option<String>,
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Every (operation, model, region) that becomes allowed or refused from OLD to NEW
    /// (per configured project with --config). Exit 0: no change; 1: changes.
    Diff {
        /// The old catalog: a JSON file or an embedded edition name.
        old: String,
        /// The new catalog: a JSON file or an embedded edition name.
        new: String,
        /// Compare per project of this config instead of per region and retention.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain of an audit log, across rotated files given oldest first: exit 0
    /// if intact and complete, 2 if intact but with recorded gaps or a chain that starts
    /// again, 1 with the first broken line.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check { config } => check(&config),
        Command::Catalog {
            command:
                CatalogCommand::Show {
                    config,
                    project,
                    catalog,
                    region,
                    retention,
                    format,
                },
        } => crate::catalog_cmd::show::run(
            config.as_deref(),
            project.as_deref(),
            catalog.as_deref(),
            region.as_deref(),
            retention.as_deref(),
            &format,
        ),
        Command::Catalog {
            command:
                CatalogCommand::Diff {
                    old,
                    new,
                    config,
                    format,
                },
        } => crate::catalog_cmd::diff::run(&old, &new, config.as_deref(), &format),
        Command::Audit {
            command: AuditCommand::Verify { files },
        } => audit_verify(&files),
        Command::Explain {
            config,
            project,
            headers,
            body,
            method,
            path,
        } => explain::run(
            &config,
            project.as_deref(),
            &headers,
            body.as_deref(),
            &method,
            &path,
        ),
    }
}

fn serve(path: Option<PathBuf>) -> i32 {
    let config = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("residency-proxy: invalid config:");
            for p in &e.problems {
                eprintln!("  {p}");
            }
            return 1;
        }
    };
    init_logging(config.process.log_format, config.process.log_level.as_deref());
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = match runtime_threads(config.process.workers, cpus) {
        None => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("residency-proxy: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(crate::server::serve(config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("residency-proxy: {e}");
            1
        }
    }
}

/// The runtime for `workers` on `cpus` available CPUs (affinity mask and cgroup quota, as
/// `available_parallelism` reads them): `None` for a current-thread runtime, `Some(n)` for a
/// multi-thread runtime with `n` workers. `workers = 0` (the default) takes one worker per CPU,
/// except on one CPU: there a multi-thread runtime with one worker still hands every task
/// through its shared queue and wakes the worker across threads (issue 11 measured it ~15%
/// slower; benches/README.md has this session's run, 7% less CPU per request for the
/// current-thread runtime).
fn runtime_threads(workers: usize, cpus: usize) -> Option<usize> {
    match workers {
        0 if cpus <= 1 => None,
        0 => Some(cpus),
        1 => None,
        n => Some(n),
    }
}

fn audit_verify(files: &[PathBuf]) -> i32 {
    match crate::audit::verify(files) {
        Ok(report) => {
            for r in &report.remarks {
                println!("{r}");
            }
            println!(
                "ok, {} record(s) in {} file(s), chain intact{}",
                report.records,
                files.len(),
                if report.incomplete {
                    ", incomplete (see above)"
                } else {
                    ""
                }
            );
            if report.incomplete {
                2
            } else {
                0
            }
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

/// `check` runs without the production secrets: a key that is not there is a warning (`serve`
/// still refuses to start without it).
fn check(path: &std::path::Path) -> i32 {
    let (loaded, missing_secrets) = Config::load_for_check(path);
    let loaded = loaded.and_then(|config| match &config.audit_path {
        Some(p) => crate::audit::check_path(p)
            .map(|()| config)
            .map_err(|e| crate::config::ConfigError { problems: vec![e] }),
        None => Ok(config),
    });
    for w in &missing_secrets {
        println!("warning: {w}");
    }
    match loaded {
        Ok(config) => {
            for w in crate::config::warnings(&config) {
                println!("warning: {w}");
            }
            println!(
                "{}: ok ({} project(s), catalog {} of {}, {} source(s))",
                path.display(),
                config.projects.projects.len(),
                config.catalog.edition,
                config.catalog.date,
                config.catalog.sources.len()
            );
            0
        }
        Err(e) => {
            for p in &e.problems {
                println!("{p}");
            }
            println!("{}: {} problem(s)", path.display(), e.problems.len());
            1
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: a log written to a file or a collector
    // gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::runtime_threads;

    #[test]
    fn workers_zero_picks_current_thread_on_one_cpu_and_one_worker_per_cpu_otherwise() {
        assert_eq!(runtime_threads(0, 1), None);
        assert_eq!(runtime_threads(0, 0), None);
        assert_eq!(runtime_threads(0, 2), Some(2));
        assert_eq!(runtime_threads(0, 8), Some(8));
        assert_eq!(runtime_threads(1, 8), None);
        assert_eq!(runtime_threads(3, 1), Some(3));
    }
}
