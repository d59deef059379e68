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

    /// Switches the file to direct I/O (`O_DIRECT`): its writes then bypass the page cache, so
    /// a sync has only the device's cache to flush. From then on every write must start at a
    /// multiple of [`DIRECT_ALIGN`], be a multiple of it long and come from an [`AlignedBuf`].
    /// Unsupported by default (the file stays as it was).
    fn set_direct(&self) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "direct I/O is not supported here"))
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
    // fcntl is not wrapped by std; the crate denies unsafe code elsewhere.
    #[allow(unsafe_code)]
    fn set_direct(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        // SAFETY: plain system calls on a descriptor this struct owns; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    // A system call std does not wrap; the crate denies unsafe code elsewhere.
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

/// Alignment of direct I/O ([`IoFile::set_direct`]): of a write's offset, length and memory.
/// 4 KiB covers the logical block size of every disk and file system portlog runs on.
pub const DIRECT_ALIGN: usize = 4096;

/// One aligned block of an [`AlignedBuf`].
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; DIRECT_ALIGN]);

/// A growable byte buffer whose memory starts at a multiple of [`DIRECT_ALIGN`], for direct
/// writes; it grows a block at a time (its length is any number of bytes).
#[derive(Default)]
pub struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf").field("len", &self.len).finish()
    }
}

impl AlignedBuf {
    /// The bytes held.
    pub fn as_slice(&self) -> &[u8] {
        &self.all()[..self.len]
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties it (the memory stays).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `b`.
    pub fn extend_from_slice(&mut self, b: &[u8]) {
        let end = self.len + b.len();
        let blocks = end.div_ceil(DIRECT_ALIGN);
        if blocks > self.blocks.len() {
            self.blocks.resize(blocks, Block([0; DIRECT_ALIGN]));
        }
        let at = self.len;
        self.all_mut()[at..end].copy_from_slice(b);
        self.len = end;
    }

    /// Appends zeros up to the next multiple of [`DIRECT_ALIGN`].
    pub fn pad_to_block(&mut self) {
        let end = self.len.next_multiple_of(DIRECT_ALIGN);
        let at = self.len;
        self.all_mut()[at..end].fill(0);
        self.len = end;
    }

    #[allow(unsafe_code)]
    fn all(&self) -> &[u8] {
        // SAFETY: `Block` is `repr(C)` around a byte array, so the blocks are one contiguous run
        // of initialised bytes, `blocks.len() * DIRECT_ALIGN` long, borrowed with `self`.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.blocks.len() * DIRECT_ALIGN) }
    }

    #[allow(unsafe_code)]
    fn all_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `all`, borrowed mutably with `self`.
        unsafe {
            std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.blocks.len() * DIRECT_ALIGN)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_buffer_starts_on_a_block_grows_across_blocks_and_pads_with_zeros() {
        let mut b = AlignedBuf::default();
        assert!(b.is_empty());
        b.extend_from_slice(&[7u8; 100]);
        assert_eq!(b.as_slice().as_ptr() as usize % DIRECT_ALIGN, 0);
        let long: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();
        b.extend_from_slice(&long);
        assert_eq!(b.len(), 9100);
        assert_eq!(&b.as_slice()[..100], &[7u8; 100]);
        assert_eq!(&b.as_slice()[100..], &long[..]);
        assert_eq!(b.as_slice().as_ptr() as usize % DIRECT_ALIGN, 0, "still aligned after growing");
        b.pad_to_block();
        assert_eq!(b.len(), 3 * DIRECT_ALIGN);
        assert!(b.as_slice()[9100..].iter().all(|&x| x == 0));
        // Cleared and refilled: the old bytes past the new length are not part of it, and a
        // pad zeroes what the last use left in the block.
        b.clear();
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(b.as_slice(), &[1, 2, 3]);
        b.pad_to_block();
        assert_eq!(b.len(), DIRECT_ALIGN);
        assert!(b.as_slice()[3..].iter().all(|&x| x == 0));
        // A length already whole blocks pads nothing.
        b.pad_to_block();
        assert_eq!(b.len(), DIRECT_ALIGN);
    }
}
