//! Reading a file a user names (a job spec, a kubeconfig, the files it names): only a regular
//! file, and never more than a cap, counted in bytes actually read (`/dev/zero` reports size 0).

use std::io::Read;
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file system said no (not found, permission denied, …).
    Io(std::io::Error),
    /// It is not a regular file: what it is ("a FIFO", "a directory", …).
    NotRegular(&'static str),
    /// It holds more than the cap.
    TooLarge(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(what) => write!(f, "not a regular file ({what})"),
            ReadError::TooLarge(cap) => write!(f, "too large (more than {cap} bytes)"),
        }
    }
}

/// What a non-regular file is, for messages.
fn kind(file_type: std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO");
        }
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
    }
    if file_type.is_dir() {
        return Some("a directory");
    }
    (!file_type.is_file()).then_some("not a file")
}

/// Read `path`, a regular file of at most `cap` bytes.
///
/// The type is checked before opening (opening a FIFO for reading blocks until a writer comes),
/// and again on the open file; the read stops one byte past the cap, whatever the file reports.
///
/// # Errors
/// [`ReadError`]: it cannot be opened, is not a regular file, or holds more than `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if let Some(what) = kind(meta.file_type()) {
        return Err(ReadError::NotRegular(what));
    }
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    // The path may have been replaced between the two looks.
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(what) = kind(meta.file_type()) {
        return Err(ReadError::NotRegular(what));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(cap) as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_and_reads_are_capped() {
        let refused = |p: &str| read_capped(Path::new(p), 10).unwrap_err().to_string();
        assert_eq!(
            refused("/dev/zero"),
            "not a regular file (a character device)"
        );
        assert_eq!(refused("/"), "not a regular file (a directory)");
        let dir = std::env::temp_dir().join(format!("kjenv-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        std::fs::write(&big, [b'x'; 11]).unwrap();
        assert!(matches!(
            read_capped(&big, 10),
            Err(ReadError::TooLarge(10))
        ));
        assert_eq!(read_capped(&big, 11).unwrap().len(), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
