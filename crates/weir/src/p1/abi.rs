//! The preview1 ABI's numbers and the guest-memory accessor (`wasi_snapshot_preview1.witx`).

use super::{P1Error, P1Result};

/// `errno` values.
pub mod errno {
    pub const SUCCESS: u16 = 0;
    pub const TOOBIG: u16 = 1;
    pub const ACCES: u16 = 2;
    pub const AGAIN: u16 = 6;
    pub const ALREADY: u16 = 7;
    pub const BADF: u16 = 8;
    pub const BUSY: u16 = 10;
    pub const DEADLK: u16 = 16;
    pub const DQUOT: u16 = 19;
    pub const EXIST: u16 = 20;
    pub const FAULT: u16 = 21;
    pub const FBIG: u16 = 22;
    pub const ILSEQ: u16 = 25;
    pub const INPROGRESS: u16 = 26;
    pub const INTR: u16 = 27;
    pub const INVAL: u16 = 28;
    pub const IO: u16 = 29;
    pub const ISDIR: u16 = 31;
    pub const LOOP: u16 = 32;
    pub const MFILE: u16 = 33;
    pub const MLINK: u16 = 34;
    pub const MSGSIZE: u16 = 35;
    pub const NAMETOOLONG: u16 = 37;
    pub const NFILE: u16 = 41;
    pub const NODEV: u16 = 43;
    pub const NOENT: u16 = 44;
    pub const NOLCK: u16 = 46;
    pub const NOMEM: u16 = 48;
    pub const NOSPC: u16 = 51;
    pub const NOSYS: u16 = 52;
    pub const NOTDIR: u16 = 54;
    pub const NOTEMPTY: u16 = 55;
    pub const NOTRECOVERABLE: u16 = 56;
    pub const NOTSOCK: u16 = 57;
    pub const NOTSUP: u16 = 58;
    pub const NOTTY: u16 = 59;
    pub const NXIO: u16 = 60;
    pub const OVERFLOW: u16 = 61;
    pub const PERM: u16 = 63;
    pub const PIPE: u16 = 64;
    pub const ROFS: u16 = 69;
    pub const SPIPE: u16 = 70;
    pub const TXTBSY: u16 = 74;
    pub const XDEV: u16 = 75;
    pub const NOTCAPABLE: u16 = 76;
}

/// `filetype` values.
pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const BLOCK_DEVICE: u8 = 1;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SOCKET_STREAM: u8 = 6;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// `oflags`, `fdflags`, `lookupflags`, `fstflags`, `whence`, `clockid`, `eventtype` bits.
pub const OFLAGS_CREAT: u16 = 1;
pub const OFLAGS_DIRECTORY: u16 = 2;
pub const OFLAGS_EXCL: u16 = 4;
pub const OFLAGS_TRUNC: u16 = 8;
pub const FDFLAGS_APPEND: u16 = 1;
pub const FDFLAGS_NONBLOCK: u16 = 4;
pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1;
pub const FST_ATIM: u16 = 1;
pub const FST_ATIM_NOW: u16 = 2;
pub const FST_MTIM: u16 = 4;
pub const FST_MTIM_NOW: u16 = 8;
pub const WHENCE_SET: u8 = 0;
pub const WHENCE_CUR: u8 = 1;
pub const WHENCE_END: u8 = 2;
pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;
pub const CLOCK_PROCESS_CPUTIME: u32 = 2;
pub const CLOCK_THREAD_CPUTIME: u32 = 3;
pub const EVENTTYPE_CLOCK: u8 = 0;
pub const EVENTTYPE_FD_READ: u8 = 1;
pub const EVENTTYPE_FD_WRITE: u8 = 2;
pub const SUBCLOCKFLAGS_ABSTIME: u16 = 1;

/// `rights` bits.
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    /// Every right a directory descriptor has (path operations and readdir).
    pub const DIRECTORY: u64 = FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_ADVISE
        | (0xfff << 9) // path_create_directory ..= path_filestat_set_times, fd_readdir among them
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES
        | (0b111 << 24); // path_symlink, path_remove_directory, path_unlink_file
    /// Every right a regular file descriptor has.
    pub const FILE: u64 = FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_SIZE
        | FD_FILESTAT_SET_TIMES
        | POLL_FD_READWRITE;
}

/// The guest's linear memory. Every access is bounds-checked: a pointer or length outside
/// memory is the guest's `fault`, never a host panic.
pub struct Memory<'a>(pub &'a mut [u8]);

impl Memory<'_> {
    fn range(&self, ptr: u32, len: u32) -> P1Result<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start
            .checked_add(len as usize)
            .ok_or(P1Error::Errno(errno::FAULT))?;
        if end > self.0.len() {
            return Err(P1Error::Errno(errno::FAULT));
        }
        Ok(start..end)
    }

    pub fn bytes(&self, ptr: u32, len: u32) -> P1Result<&[u8]> {
        let range = self.range(ptr, len)?;
        Ok(&self.0[range])
    }

    pub fn bytes_mut(&mut self, ptr: u32, len: u32) -> P1Result<&mut [u8]> {
        let range = self.range(ptr, len)?;
        Ok(&mut self.0[range])
    }

    pub fn string(&self, ptr: u32, len: u32) -> P1Result<String> {
        String::from_utf8(self.bytes(ptr, len)?.to_vec()).map_err(|_| P1Error::Errno(errno::ILSEQ))
    }

    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> P1Result<()> {
        self.bytes_mut(ptr, bytes.len() as u32)?
            .copy_from_slice(bytes);
        Ok(())
    }

    pub fn u8(&self, ptr: u32) -> P1Result<u8> {
        Ok(self.bytes(ptr, 1)?[0])
    }

    pub fn u16(&self, ptr: u32) -> P1Result<u16> {
        let b = self.bytes(ptr, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&self, ptr: u32) -> P1Result<u32> {
        let b = self.bytes(ptr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&self, ptr: u32) -> P1Result<u64> {
        let b = self.bytes(ptr, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn put_u8(&mut self, ptr: u32, v: u8) -> P1Result<()> {
        self.write(ptr, &[v])
    }

    pub fn put_u16(&mut self, ptr: u32, v: u16) -> P1Result<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn put_u32(&mut self, ptr: u32, v: u32) -> P1Result<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn put_u64(&mut self, ptr: u32, v: u64) -> P1Result<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// The `(buf, len)` pairs of an `iovec`/`ciovec` array.
    pub fn iovecs(&self, iovs: u32, count: u32) -> P1Result<Vec<(u32, u32)>> {
        let size = count.checked_mul(8).ok_or(P1Error::Errno(errno::FAULT))?;
        self.range(iovs, size)?;
        (0..count)
            .map(|i| Ok((self.u32(iovs + i * 8)?, self.u32(iovs + i * 8 + 4)?)))
            .collect()
    }

    /// The bytes of a `ciovec` array, concatenated (for writes).
    pub fn gather(&self, iovs: u32, count: u32) -> P1Result<Vec<u8>> {
        let mut out = Vec::new();
        for (buf, len) in self.iovecs(iovs, count)? {
            out.extend_from_slice(self.bytes(buf, len)?);
        }
        Ok(out)
    }

    /// Copies `data` into an `iovec` array, in order; returns how many bytes were placed.
    pub fn scatter(&mut self, iovs: &[(u32, u32)], data: &[u8]) -> P1Result<usize> {
        let mut done = 0;
        for &(buf, len) in iovs {
            if done == data.len() {
                break;
            }
            let n = (len as usize).min(data.len() - done);
            self.write(buf, &data[done..done + n])?;
            done += n;
        }
        Ok(done)
    }
}

/// The total length of an `iovec` array (what one read may fill), capped by `cap`.
pub fn total_len(iovs: &[(u32, u32)], cap: usize) -> usize {
    iovs.iter()
        .map(|&(_, len)| len as usize)
        .fold(0usize, usize::saturating_add)
        .min(cap)
}
