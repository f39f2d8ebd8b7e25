//! Streams over files: `read-via-stream`, `write-via-stream`, `append-via-stream`.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use cap_std::fs::File;

use crate::io::pipe::UNBOUNDED_WRITE_PERMIT;
use crate::io::{InputStream, OutputStream, StreamError, StreamResult};

/// `pread` that retries on EINTR.
pub(crate) fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match rustix::io::pread(file, &mut *buffer, offset) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Reads a file from a position; `closed` at end of file.
pub(crate) struct FileInputStream {
    file: Arc<File>,
    position: u64,
    failed: bool,
}

impl FileInputStream {
    pub(crate) fn new(file: Arc<File>, position: u64) -> Self {
        FileInputStream {
            file,
            position,
            failed: false,
        }
    }
}

#[async_trait::async_trait]
impl InputStream for FileInputStream {
    fn read(&mut self, max: usize) -> StreamResult<Bytes> {
        if self.failed {
            return Err(StreamError::Closed);
        }
        if max == 0 {
            return Ok(Bytes::new());
        }
        let mut buffer = vec![0u8; max];
        match read_at(&self.file, &mut buffer, self.position) {
            Ok(0) => Err(StreamError::Closed),
            Ok(n) => {
                buffer.truncate(n);
                self.position += n as u64;
                Ok(Bytes::from(buffer))
            }
            Err(error) => {
                self.failed = true;
                Err(StreamError::LastOperationFailed(wasmtime::Error::new(
                    error,
                )))
            }
        }
    }

    async fn ready(&mut self) {}
}

/// Writes a file at a position, or at its end (`append-via-stream`).
pub(crate) struct FileOutputStream {
    file: Arc<File>,
    /// `None` appends.
    position: Option<u64>,
    failed: bool,
}

impl FileOutputStream {
    pub(crate) fn at(file: Arc<File>, position: u64) -> Self {
        FileOutputStream {
            file,
            position: Some(position),
            failed: false,
        }
    }

    pub(crate) fn append(file: Arc<File>) -> Self {
        FileOutputStream {
            file,
            position: None,
            failed: false,
        }
    }

    fn write_once(&self, bytes: &[u8], position: Option<u64>) -> rustix::io::Result<usize> {
        match position {
            Some(offset) => rustix::io::pwrite(&*self.file, bytes, offset),
            None => rustix::io::pwritev2(
                &*self.file,
                &[io::IoSlice::new(bytes)],
                0,
                rustix::io::ReadWriteFlags::APPEND,
            ),
        }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.write_once(bytes, self.position) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    bytes = &bytes[n..];
                    if let Some(position) = &mut self.position {
                        *position += n as u64;
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
        Ok(())
    }

    fn check_open(&self) -> StreamResult<()> {
        if self.failed {
            Err(StreamError::Closed)
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl OutputStream for FileOutputStream {
    fn check_write(&mut self) -> StreamResult<usize> {
        self.check_open()?;
        Ok(UNBOUNDED_WRITE_PERMIT)
    }

    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.check_open()?;
        self.write_all(&bytes).map_err(|error| {
            self.failed = true;
            StreamError::LastOperationFailed(wasmtime::Error::new(error))
        })
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Writes went to the file already; flushing a stream is not `sync`.
        self.check_open()
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.check_write()
    }
}
