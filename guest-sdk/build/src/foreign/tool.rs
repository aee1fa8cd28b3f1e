//! Running toolchain programs with their output shown, and walking input folders.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::BuildError;

/// One progress line on stderr, as cargo prints its own.
pub(crate) fn progress(text: &str) {
    eprintln!("wasmflo: {text}");
}

/// Runs `cmd` with its output passed through (so a slow tool shows its own progress);
/// a non-zero exit is [`BuildError::Tool`] for `component`, carrying the first line of
/// its stderr that reports an error.
pub(crate) fn run(cmd: &mut Command, component: &str) -> Result<(), BuildError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            program: program.clone(),
            source,
        })?;
    // A compiler's first `file:line: error:` names the cause; an interpreter's last
    // `SomeError: ...` line is the most specific of a chain of exceptions.
    let (mut compile_error, mut exception) = (None, None);
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let trimmed: String = line.trim().chars().take(300).collect();
            let head = trimmed.split(':').next().unwrap_or_default();
            if head.ends_with("Error") && !head.contains(' ') || head == "error" {
                exception = Some(trimmed);
            } else if compile_error.is_none() && trimmed.contains(": error:") {
                compile_error = Some(trimmed);
            }
        }
    }
    let first_error = compile_error.or(exception);
    let status = child.wait().map_err(|source| BuildError::Spawn {
        program: program.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Tool {
            program,
            component: component.to_owned(),
            status: status.to_string(),
            detail: first_error.unwrap_or_else(|| "see its output above".into()),
        })
    }
}

/// Whether `program` can be started (`program --version` exits 0).
pub(crate) fn available(program: impl AsRef<OsStr>) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every file under `dir` (recursively, sorted), skipping hidden entries and the
/// folders toolchains leave behind (`node_modules`, `__pycache__`, `target`).
pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BuildError::io(&d, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| BuildError::io(&d, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            if name.starts_with('.') || ["node_modules", "__pycache__", "target"].contains(&&*name)
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
