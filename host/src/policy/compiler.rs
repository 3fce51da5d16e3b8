//! Where Cranelift runs. The gateway compiles tenant uploads (and, on a first start, the built-ins) in a
//! child process, `sluice compile-policy`, started with an empty environment: untrusted bytes meet the
//! compiler in a process that holds no secret (no pepper, no operator token, no keys, no database), a compile
//! that runs past `policies.compile_timeout` is killed rather than left running, and the compiler's memory
//! (tens of MiB of Cranelift code and heap) never becomes the gateway's: the gateway only loads the
//! finished artifact.
//!
//! Protocol: the component's bytes on stdin; the serialized artifact on stdout and exit code 0; or exit
//! code 2 with `not-wasm`, `core-module` or `not-a-component\t<reason>` on stderr when the input is refused.
//!
//! The child limits itself first: its heap (`RLIMIT_DATA`, `policies.compile_memory_mib`) and its CPU time
//! (`RLIMIT_CPU`, the compile timeout). A child that dies of a signal (the kernel's answer to either limit,
//! or the OOM killer's) refused the upload: it is a 400, never compiled again in the gateway, whose memory
//! every tenant shares.
//!
//! In-process compilation remains for embedders and tests that start the gateway without its binary
//! ([`Compiler::InProcess`]), and as the fallback only when the child cannot be started at all or answers
//! with something that does not load (the binary was replaced by an upgrade while the gateway ran, say).

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::wasm::{self, Limits, PolicyFailure};

/// The subcommand of the `sluice` binary that compiles one component.
pub const SUBCOMMAND: &str = "compile-policy";

/// Exit code of the compiler process when it refuses its input.
const REFUSED: i32 = 2;

pub use crate::config::Compiler;

/// Why a compilation produced nothing.
#[derive(Debug)]
pub enum CompileError {
    /// The input is not a valid component (the uploader's fault).
    Refused(PolicyFailure),
    TimedOut,
    /// The compiler itself failed.
    Broken(String),
}

impl Compiler {
    /// Compiles `bytes` into a component of `engine` (whose settings `limits` gave), within `timeout`.
    pub async fn compile(
        &self,
        engine: &Engine,
        limits: &Limits,
        bytes: &[u8],
        timeout: Duration,
        memory_bytes: u64,
    ) -> Result<Component, CompileError> {
        if let Compiler::Process(exe) = self {
            match compile_in_child(exe, engine, limits, bytes, timeout, memory_bytes).await {
                Err(CompileError::Broken(why)) => {
                    tracing::warn!(exe = %exe.display(), error = %why, "the policy compiler process failed; compiling in the gateway");
                }
                done => return done,
            }
        }
        let engine = engine.clone();
        let owned = bytes.to_vec();
        let job = tokio::task::spawn_blocking(move || wasm::compile(&engine, &owned));
        match tokio::time::timeout(timeout, job).await {
            Ok(Ok(result)) => result.map_err(refused_or_broken),
            Ok(Err(e)) => Err(CompileError::Broken(e.to_string())),
            // The compilation runs on to its end on the blocking pool; its result is dropped.
            Err(_) => Err(CompileError::TimedOut),
        }
    }
}

fn refused_or_broken(e: PolicyFailure) -> CompileError {
    match e {
        PolicyFailure::NotWasm
        | PolicyFailure::CoreModule
        | PolicyFailure::NotAComponent(_)
        | PolicyFailure::ForbiddenImport(_) => CompileError::Refused(e),
        other => CompileError::Broken(other.to_string()),
    }
}

/// Compiles in a child process, `exe compile-policy`, with no fallback: [`Compiler::compile`] adds that.
pub async fn compile_in_child(
    exe: &std::path::Path,
    engine: &Engine,
    limits: &Limits,
    bytes: &[u8],
    timeout: Duration,
    memory_bytes: u64,
) -> Result<Component, CompileError> {
    let broken = |what: &str, e: std::io::Error| CompileError::Broken(format!("{what}: {e}"));
    let mut child = tokio::process::Command::new(exe)
        .arg(SUBCOMMAND)
        .arg("--max-memory-bytes")
        .arg(limits.max_memory_bytes.to_string())
        .arg("--max-compile-bytes")
        .arg(memory_bytes.to_string())
        .arg("--max-cpu-seconds")
        .arg(timeout.as_secs().saturating_add(1).to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| broken("starting it", e))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| CompileError::Broken("no stdin".to_owned()))?;
    let input = bytes.to_vec();
    // Written while the output is read; the child reads all its input before it writes anything.
    let feed = tokio::spawn(async move {
        let written = stdin.write_all(&input).await;
        drop(stdin);
        written
    });
    // Dropping the future on timeout drops the child, which kills it (`kill_on_drop`).
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| CompileError::TimedOut)?
        .map_err(|e| broken("waiting for it", e))?;
    // A child that exited early may have closed its stdin: the exit status tells why.
    let _ = feed.await;
    match output.status.code() {
        Some(0) => wasm::load_artifact(engine, &output.stdout).map_err(|e| match e {
            PolicyFailure::ForbiddenImport(_) => CompileError::Refused(e),
            other => CompileError::Broken(format!("its artifact does not load: {other}")),
        }),
        Some(REFUSED) => {
            let text = String::from_utf8_lossy(&output.stderr);
            let (kind, reason) = text
                .trim_end()
                .split_once('\t')
                .unwrap_or((text.trim_end(), ""));
            Err(CompileError::Refused(match kind {
                "not-wasm" => PolicyFailure::NotWasm,
                "core-module" => PolicyFailure::CoreModule,
                _ => PolicyFailure::NotAComponent(reason.to_owned()),
            }))
        }
        None => {
            // Killed: by the kernel at its heap or CPU limit, or by the OOM killer. The upload did that.
            #[cfg(unix)]
            let signal = std::os::unix::process::ExitStatusExt::signal(&output.status).unwrap_or(0);
            #[cfg(not(unix))]
            let signal = 0;
            Err(CompileError::Refused(PolicyFailure::NotAComponent(
                format!(
                    "compiling it took more memory or CPU time than the compiler is given (killed by signal {signal})"
                ),
            )))
        }
        // The child ran on the upload and failed: under its limits that is most often memory. Refused too;
        // compiling it again in the gateway would take the same memory there.
        Some(code) => Err(CompileError::Refused(PolicyFailure::NotAComponent(
            format!(
                "the compiler failed on it (exit {code}): {}",
                String::from_utf8_lossy(&output.stderr)
                    .trim_end()
                    .chars()
                    .take(512)
                    .collect::<String>()
            ),
        ))),
    }
}

/// The child's limits on itself, before it reads a byte of the upload.
fn limit_self(heap_bytes: Option<u64>, cpu_seconds: Option<u64>) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |n| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    if let Some(n) = heap_bytes {
        setrlimit(Resource::Data, limit(n))?;
    }
    if let Some(n) = cpu_seconds {
        setrlimit(Resource::Cpu, limit(n))?;
    }
    Ok(())
}

/// The child's side (`sluice compile-policy`): reads a component on stdin, writes its artifact on stdout.
/// Returns the exit code.
pub fn run_child(
    max_memory_bytes: usize,
    max_compile_bytes: Option<u64>,
    max_cpu_seconds: Option<u64>,
) -> i32 {
    if let Err(e) = limit_self(max_compile_bytes, max_cpu_seconds) {
        eprintln!("setting the compiler's limits: {e}");
        return 1;
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading the component: {e}");
        return 1;
    }
    let limits = Limits {
        max_memory_bytes,
        ..Limits::default()
    };
    let engine = match Engine::new(&wasm::engine_config(&limits)) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("starting the engine: {e}");
            return 1;
        }
    };
    match wasm::precompile(&engine, &bytes) {
        Ok(artifact) => match std::io::stdout().lock().write_all(&artifact) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("writing the artifact: {e}");
                1
            }
        },
        Err(PolicyFailure::NotWasm) => {
            eprintln!("not-wasm");
            REFUSED
        }
        Err(PolicyFailure::CoreModule) => {
            eprintln!("core-module");
            REFUSED
        }
        Err(PolicyFailure::NotAComponent(reason)) => {
            // One line: the reason's own line breaks would end the protocol's line early.
            eprintln!("not-a-component\t{}", reason.replace('\n', " "));
            REFUSED
        }
        Err(other) => {
            eprintln!("{other}");
            1
        }
    }
}
