//! The message log's file I/O behind a small trait, so that tests can inject failed writes,
//! fsyncs and renames, short writes, a full disk and power loss without touching the
//! production paths (docs/reliability.md, "Fault injection").
//!
//! Only the operations that change the disk, and the reads of open segments, go through it:
//! sealed segments are memory-mapped from the real file (a wrapper such as [`FaultyIo`] works
//! on the real file system, so the mapping sees what it wrote), and directory listings are read
//! directly. [`OsIo`] is the real thing, a thin shell over `std::fs`; [`FaultyIo`] wraps it.

mod faulty;
mod splitmix;

pub use faulty::{FaultyIo, PowerLoss};
pub use splitmix::SplitMix64;

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A file of the message log, opened through an [`Io`].
pub trait IoFile: Send + Sync + Debug {
    /// Reads at `off`; may return fewer bytes than asked (0 at the end of the file).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// Writes at `off`; may write fewer bytes than given (a short write), never zero.
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<usize>;
    /// Sets the length (truncates or extends with zeros).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Makes the data durable (`fdatasync`: the length too when it changed).
    fn sync_data(&self) -> io::Result<()>;
    /// The current length.
    fn len(&self) -> io::Result<u64>;

    /// Starts writing `len` bytes at `off` back to the disk, without waiting and without
    /// making anything durable (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`), so that a
    /// later sync has less to write. Doing nothing is correct, and is the default.
    fn start_writeback(&self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Writes all of `buf` at `off`, continuing after short writes.
    fn write_all_at(&self, mut buf: &[u8], mut off: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, off) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write the whole buffer")),
                Ok(n) => {
                    buf = &buf[n..];
                    off += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Fills `buf` from `off`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut off: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, off) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill the whole buffer")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    off += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The whole file.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()?).map_err(|_| io::Error::other("file larger than memory"))?;
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// The file-system operations of the message log.
pub trait Io: Send + Sync + Debug {
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;
    /// Creates a file for writing, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;
    /// Opens an existing file for reading and writing.
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in `dir` durable (`fsync` of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A shared [`Io`].
pub type SharedIo = Arc<dyn Io>;

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsIo;

impl OsIo {
    /// As a [`SharedIo`].
    pub fn shared() -> SharedIo {
        Arc::new(OsIo)
    }
}

#[derive(Debug)]
struct OsFile(File);

impl IoFile for OsFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.0.read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<usize> {
        self.0.write_at(buf, off)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    // The one system call std does not wrap; the crate denies unsafe code elsewhere.
    #[allow(unsafe_code)]
    fn start_writeback(&self, off: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "writeback range past i64"));
        };
        // SAFETY: a plain system call on a descriptor this struct owns; no memory is passed.
        let r = unsafe { libc::sync_file_range(self.0.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Io for OsIo {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(OsFile(OpenOptions::new().read(true).write(true).create_new(true).open(path)?)))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(OsFile(File::create(path)?)))
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(OsFile(OpenOptions::new().read(true).write(true).open(path)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A sequential [`std::io::Write`] over an [`IoFile`], for writers that stream a file out
/// (sealing), usually behind a `BufWriter`.
#[derive(Debug)]
pub struct FileWriter {
    file: Box<dyn IoFile>,
    pos: u64,
}

impl FileWriter {
    /// Writes `file` from its start.
    pub fn new(file: Box<dyn IoFile>) -> Self {
        Self { file, pos: 0 }
    }

    /// The file back.
    pub fn into_file(self) -> Box<dyn IoFile> {
        self.file
    }
}

impl io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
