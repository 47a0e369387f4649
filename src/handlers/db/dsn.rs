//! Reading a binding's connection string from where its `dsn_env` or `dsn_file` says,
//! once, at start-up.
//!
//! This module owns the secret's one trip from the environment or a file into the
//! handler's configuration. Every error names the binding and the variable or the file,
//! never the value: start-up errors are printed, and the value is a password's carrier.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;

use crate::contract::DsnSource;

/// The largest secret file read; a connection string is far smaller.
const MAX_DSN_FILE_BYTES: u64 = 64 * 1024;

/// The connection string `source` holds for the binding `binding`, surrounding white
/// space removed (a secret file usually ends in a newline); an unset variable, an
/// unreadable, oversized or empty file, or an empty value is an error saying which.
pub(super) fn read(binding: &str, source: &DsnSource) -> Result<String, String> {
    let value = match source {
        DsnSource::Env(name) => match std::env::var(name) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => {
                return Err(format!(
                    "binding '{binding}': the environment variable {name} (config.dsn_env) is not set; set it to the database's connection string"
                ));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!(
                    "binding '{binding}': the environment variable {name} (config.dsn_env) is not valid UTF-8"
                ));
            }
        },
        DsnSource::File(path) => {
            let mut text = String::new();
            // Opened without waiting (a FIFO with no writer would hold start-up forever)
            // and checked on the descriptor, as contract files are: only a regular file
            // (a Kubernetes secret volume's links lead to one) is read.
            let read = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .and_then(|file| {
                    if !file.metadata()?.is_file() {
                        return Err(io::Error::other("not a regular file"));
                    }
                    file.take(MAX_DSN_FILE_BYTES + 1).read_to_string(&mut text)
                });
            match read {
                Ok(_) if text.len() as u64 > MAX_DSN_FILE_BYTES => {
                    return Err(format!(
                        "binding '{binding}': the file {} (config.dsn_file) is larger than {MAX_DSN_FILE_BYTES} bytes; it must hold one connection string",
                        path.display()
                    ));
                }
                Ok(_) => text,
                // The I/O error's text names the cause (not found, permission denied), never
                // the content.
                Err(error) => {
                    return Err(format!(
                        "binding '{binding}': cannot read the file {} (config.dsn_file): {error}",
                        path.display()
                    ));
                }
            }
        }
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(format!(
            "binding '{binding}': the {source} (config.dsn_{}) is empty; it must hold the database's connection string",
            match source {
                DsnSource::Env(_) => "env",
                DsnSource::File(_) => "file",
            }
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_directory_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().expect("a directory");
        let fifo = dir.path().join("secret");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        for path in [fifo, dir.path().to_path_buf()] {
            let error = read("orders_db", &DsnSource::File(path)).unwrap_err();
            assert!(
                error.contains("not a regular file") || error.contains("directory"),
                "{error}"
            );
            assert!(error.contains("binding 'orders_db'"), "{error}");
        }
    }
}
