//! `wasi:filesystem` (types + preopens) on `cap-std`.
//!
//! Every path a guest passes is resolved by `cap-std` inside the directory descriptor it is
//! relative to: `..` above a preopen, absolute paths and symlinks that lead out are refused
//! (`not-permitted`). Permissions of a preopen ([`DirPerms`], [`FilePerms`]) are checked
//! before any system call.
//!
//! File I/O (`read`, `write`, file streams) runs synchronously on the calling thread: local
//! files answer from the page cache, and this keeps the hot path free of thread hops.

mod errors;
mod streams;

use std::io;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cap_fs_ext::{
    DirExt, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OsMetadataExt, SystemTimeSpec,
};
use cap_std::fs::{Dir, File, FileTypeExt, Metadata, OpenOptions};
use wasmtime::component::Resource;

pub use errors::FsError;
pub(crate) use errors::error_code_from_io;

use crate::WasiCtxView;
use crate::bindings::wasi::clocks::wall_clock::Datetime;
use crate::bindings::wasi::filesystem::types::{
    Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use crate::bindings::wasi::filesystem::{preopens, types};
use crate::io::{InputStreamResource, IoError, OutputStreamResource};

bitflags::bitflags! {
    /// What a guest may do with a preopened directory tree.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DirPerms: u8 {
        /// List directories and open entries.
        const READ = 0b01;
        /// Create, remove, rename and link entries; set directory times.
        const MUTATE = 0b10;
    }
}

bitflags::bitflags! {
    /// What a guest may do with files under a preopened directory.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FilePerms: u8 {
        /// Read file contents.
        const READ = 0b01;
        /// Write, truncate, resize and set times.
        const WRITE = 0b10;
    }
}

/// A preopened directory, as configured by the embedder.
pub(crate) struct Preopen {
    dir: Arc<Dir>,
    guest_path: String,
    perms: DirPerms,
    file_perms: FilePerms,
}

impl Preopen {
    pub(crate) fn new(
        dir: Dir,
        guest_path: String,
        perms: DirPerms,
        file_perms: FilePerms,
    ) -> Self {
        Preopen {
            dir: Arc::new(dir),
            guest_path,
            perms,
            file_perms,
        }
    }
}

/// The guest's `descriptor` resource.
pub enum Descriptor {
    /// An open file.
    File(FileDescriptor),
    /// An open directory.
    Dir(DirDescriptor),
}

/// An open file and what the guest may do with it.
pub struct FileDescriptor {
    file: Arc<File>,
    /// The flags the guest opened it with (`get-flags` reports them).
    flags: DescriptorFlags,
    perms: FilePerms,
}

/// An open directory and what the guest may do in it.
pub struct DirDescriptor {
    dir: Arc<Dir>,
    perms: DirPerms,
    file_perms: FilePerms,
}

impl FileDescriptor {
    /// A descriptor opened with `read`, or with neither `read` nor `write` (POSIX
    /// `O_RDONLY` is 0: a file opened with no access flags reads), may read.
    fn can_read(&self) -> bool {
        let read_only_by_default = !self.flags.contains(DescriptorFlags::WRITE);
        self.perms.contains(FilePerms::READ)
            && (self.flags.contains(DescriptorFlags::READ) || read_only_by_default)
    }

    /// Refuses a write: `not-permitted` where the preopen forbids writing at all (a
    /// read-only `--dir-ro`, say), else `not_opened_for_write` where this descriptor was
    /// opened without `write` (`bad-descriptor` for a write, as POSIX's EBADF; `invalid`
    /// for `set-size`, as `ftruncate`'s EINVAL).
    fn require_write(&self, not_opened_for_write: ErrorCode) -> Result<(), FsError> {
        if !self.perms.contains(FilePerms::WRITE) {
            Err(ErrorCode::NotPermitted.into())
        } else if !self.flags.contains(DescriptorFlags::WRITE) {
            Err(not_opened_for_write.into())
        } else {
            Ok(())
        }
    }
}

impl DirDescriptor {
    fn require(&self, perms: DirPerms) -> Result<&Dir, FsError> {
        if self.perms.contains(perms) {
            Ok(&self.dir)
        } else {
            Err(ErrorCode::NotPermitted.into())
        }
    }
}

/// The guest's `directory-entry-stream` resource: entries read when the stream was opened.
pub struct DirectoryEntryStream {
    entries: std::vec::IntoIter<Result<DirectoryEntry, ErrorCode>>,
}

fn descriptor_type(file_type: cap_std::fs::FileType) -> DescriptorType {
    if file_type.is_dir() {
        DescriptorType::Directory
    } else if file_type.is_symlink() {
        DescriptorType::SymbolicLink
    } else if file_type.is_file() {
        DescriptorType::RegularFile
    } else if file_type.is_block_device() {
        DescriptorType::BlockDevice
    } else if file_type.is_char_device() {
        DescriptorType::CharacterDevice
    } else if file_type.is_fifo() {
        DescriptorType::Fifo
    } else if file_type.is_socket() {
        DescriptorType::Socket
    } else {
        DescriptorType::Unknown
    }
}

fn datetime(seconds: i64, nanoseconds: i64) -> Option<Datetime> {
    Some(Datetime {
        seconds: u64::try_from(seconds).ok()?,
        nanoseconds: u32::try_from(nanoseconds).ok()?,
    })
}

fn descriptor_stat(meta: &Metadata) -> DescriptorStat {
    DescriptorStat {
        type_: descriptor_type(meta.file_type()),
        link_count: meta.nlink(),
        size: meta.len(),
        data_access_timestamp: datetime(meta.atime(), meta.atime_nsec()),
        data_modification_timestamp: datetime(meta.mtime(), meta.mtime_nsec()),
        status_change_timestamp: datetime(meta.ctime(), meta.ctime_nsec()),
    }
}

/// A per-process key so that metadata hashes do not reveal inode numbers.
fn hash_key() -> &'static std::collections::hash_map::RandomState {
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEY.get_or_init(Default::default)
}

fn metadata_hash(meta: &Metadata) -> MetadataHashValue {
    use std::hash::BuildHasher;
    let key = hash_key();
    MetadataHashValue {
        lower: key.hash_one((meta.dev(), meta.ino(), 0u8)),
        upper: key.hash_one((meta.dev(), meta.ino(), 1u8)),
    }
}

fn rustix_timespec(timestamp: &NewTimestamp) -> rustix::fs::Timespec {
    match timestamp {
        NewTimestamp::NoChange => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        NewTimestamp::Now => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        NewTimestamp::Timestamp(at) => rustix::fs::Timespec {
            tv_sec: i64::try_from(at.seconds).unwrap_or(i64::MAX),
            tv_nsec: i64::from(at.nanoseconds),
        },
    }
}

fn system_time_spec(timestamp: &NewTimestamp) -> Result<Option<SystemTimeSpec>, FsError> {
    Ok(match timestamp {
        NewTimestamp::NoChange => None,
        NewTimestamp::Now => Some(SystemTimeSpec::SymbolicNow),
        NewTimestamp::Timestamp(at) => {
            if at.nanoseconds >= 1_000_000_000 {
                return Err(ErrorCode::Invalid.into());
            }
            let since_epoch = Duration::new(at.seconds, at.nanoseconds);
            let time = UNIX_EPOCH
                .checked_add(since_epoch)
                .ok_or(ErrorCode::Overflow)?;
            Some(SystemTimeSpec::Absolute(
                cap_std::time::SystemTime::from_std(time),
            ))
        }
    })
}

fn check_timestamp(timestamp: &NewTimestamp) -> Result<(), FsError> {
    match timestamp {
        NewTimestamp::Timestamp(at) if at.nanoseconds >= 1_000_000_000 => {
            Err(ErrorCode::Invalid.into())
        }
        _ => Ok(()),
    }
}

pub(crate) type Desc = Resource<Descriptor>;

impl WasiCtxView<'_> {
    fn descriptor(&self, fd: &Desc) -> Result<&Descriptor, FsError> {
        Ok(self.table.get(fd)?)
    }

    fn file(&self, fd: &Desc) -> Result<&FileDescriptor, FsError> {
        match self.descriptor(fd)? {
            Descriptor::File(file) => Ok(file),
            Descriptor::Dir(_) => Err(ErrorCode::IsDirectory.into()),
        }
    }

    fn dir(&self, fd: &Desc) -> Result<&DirDescriptor, FsError> {
        match self.descriptor(fd)? {
            Descriptor::Dir(dir) => Ok(dir),
            Descriptor::File(_) => Err(ErrorCode::NotDirectory.into()),
        }
    }

    fn metadata(&self, fd: &Desc) -> Result<Metadata, FsError> {
        Ok(match self.descriptor(fd)? {
            Descriptor::File(f) => f.file.metadata()?,
            Descriptor::Dir(d) => d.dir.dir_metadata()?,
        })
    }

    fn metadata_at(
        &self,
        fd: &Desc,
        path_flags: PathFlags,
        path: &str,
    ) -> Result<Metadata, FsError> {
        let dir = self.dir(fd)?.require(DirPerms::READ)?;
        Ok(if path_flags.contains(PathFlags::SYMLINK_FOLLOW) {
            dir.metadata(path)?
        } else {
            dir.symlink_metadata(path)?
        })
    }
}

/// The descriptor operations whose results are streams, for both ABIs (0.2 puts them in the
/// resource table, 0.3 turns them into component-model streams).
impl WasiCtxView<'_> {
    /// A stream reading the file from `offset`, if the descriptor may read.
    pub(crate) fn file_input_stream(
        &self,
        fd: &Desc,
        offset: u64,
    ) -> Result<streams::FileInputStream, FsError> {
        let file = self.file(fd)?;
        if !file.can_read() {
            return Err(ErrorCode::BadDescriptor.into());
        }
        Ok(streams::FileInputStream::new(file.file.clone(), offset))
    }

    /// A stream writing the file from `offset` (appending when `None`), if the descriptor
    /// may write.
    pub(crate) fn file_output_stream(
        &self,
        fd: &Desc,
        offset: Option<u64>,
    ) -> Result<streams::FileOutputStream, FsError> {
        let file = self.file(fd)?;
        file.require_write(ErrorCode::BadDescriptor)?;
        Ok(match offset {
            Some(offset) => streams::FileOutputStream::at(file.file.clone(), offset),
            None => streams::FileOutputStream::append(file.file.clone()),
        })
    }

    /// The directory's entries (read when asked, as `readdir` does), each or its error.
    pub(crate) fn directory_entries(
        &self,
        fd: &Desc,
    ) -> Result<Vec<Result<DirectoryEntry, ErrorCode>>, FsError> {
        let dir = self.dir(fd)?.require(DirPerms::READ)?;
        let mut entries = Vec::new();
        for entry in dir.entries()? {
            let entry = entry.map_err(|e| errors::error_code_from_io(&e));
            entries.push(entry.and_then(|entry| {
                let name = entry
                    .file_name()
                    .into_string()
                    .map_err(|_| ErrorCode::IllegalByteSequence)?;
                let type_ = entry
                    .file_type()
                    .map(descriptor_type)
                    .unwrap_or(DescriptorType::Unknown);
                Ok(DirectoryEntry { type_, name })
            }));
        }
        Ok(entries)
    }
}

impl types::Host for WasiCtxView<'_> {
    fn convert_error_code(&mut self, error: FsError) -> wasmtime::Result<ErrorCode> {
        error.into_guest()
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(self
            .table
            .get(&err)?
            .as_io()
            .map(errors::error_code_from_io))
    }
}

/// A failed open: the guest's error code, and the OS error number behind it if there was one.
pub(crate) struct OpenFailure {
    pub(crate) code: FsError,
    pub(crate) os_errno: Option<i32>,
}

impl OpenFailure {
    fn os(error: io::Error) -> Self {
        OpenFailure {
            os_errno: error.raw_os_error(),
            code: error.into(),
        }
    }
}

impl From<FsError> for OpenFailure {
    fn from(code: FsError) -> Self {
        OpenFailure {
            code,
            os_errno: None,
        }
    }
}

impl From<ErrorCode> for OpenFailure {
    fn from(code: ErrorCode) -> Self {
        FsError::from(code).into()
    }
}

impl WasiCtxView<'_> {
    /// `open-at`'s work, shared by every ABI: the opened descriptor, not yet in the table.
    /// A failure keeps the OS error number, for ABIs with codes WASI 0.2 lacks (preview1's
    /// `mfile`/`nfile`).
    pub(crate) fn open_descriptor(
        &mut self,
        fd: &Desc,
        path_flags: PathFlags,
        path: &str,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Descriptor, OpenFailure> {
        let parent = self.dir(fd)?;
        let dir = parent.require(DirPerms::READ)?;
        let creates = open_flags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE);
        if (creates || flags.contains(DescriptorFlags::MUTATE_DIRECTORY))
            && !parent.perms.contains(DirPerms::MUTATE)
        {
            return Err(ErrorCode::NotPermitted.into());
        }
        if (creates || flags.contains(DescriptorFlags::WRITE))
            && !parent.file_perms.contains(FilePerms::WRITE)
        {
            return Err(ErrorCode::NotPermitted.into());
        }
        if open_flags.contains(OpenFlags::DIRECTORY) {
            if creates {
                // O_CREAT/O_TRUNC with O_DIRECTORY: EINVAL in POSIX.
                return Err(ErrorCode::Invalid.into());
            }
            if flags.contains(DescriptorFlags::WRITE) {
                // A directory cannot be opened for writing: EISDIR, as `open` reports it.
                return Err(ErrorCode::IsDirectory.into());
            }
        }

        let mut options = OpenOptions::new();
        options.maybe_dir(true);
        options.follow(if path_flags.contains(PathFlags::SYMLINK_FOLLOW) {
            cap_fs_ext::FollowSymlinks::Yes
        } else {
            cap_fs_ext::FollowSymlinks::No
        });
        let writes = flags.contains(DescriptorFlags::WRITE) || creates;
        // Neither read nor write asked for: read access, as POSIX O_RDONLY (0) and wasmtime
        // give it (also with `create`/`truncate`, which imply writing).
        options
            .read(flags.contains(DescriptorFlags::READ) || !flags.contains(DescriptorFlags::WRITE));
        options.write(writes);
        if open_flags.contains(OpenFlags::CREATE) {
            if open_flags.contains(OpenFlags::EXCLUSIVE) {
                options.create_new(true);
            } else {
                options.create(true);
            }
        }
        if open_flags.contains(OpenFlags::TRUNCATE) {
            options.truncate(true);
        }
        let (perms, file_perms) = (parent.perms, parent.file_perms);
        let opened = dir.open_with(path, &options).map_err(OpenFailure::os)?;
        let is_dir = opened.metadata().map_err(OpenFailure::os)?.is_dir();
        let descriptor = if is_dir {
            Descriptor::Dir(DirDescriptor {
                dir: Arc::new(Dir::from_std_file(opened.into_std())),
                perms,
                file_perms,
            })
        } else if open_flags.contains(OpenFlags::DIRECTORY) {
            return Err(ErrorCode::NotDirectory.into());
        } else {
            Descriptor::File(FileDescriptor {
                file: Arc::new(opened),
                flags,
                perms: file_perms,
            })
        };
        Ok(descriptor)
    }
}

impl types::HostDescriptor for WasiCtxView<'_> {
    fn read_via_stream(
        &mut self,
        fd: Desc,
        offset: u64,
    ) -> Result<Resource<InputStreamResource>, FsError> {
        let stream = self.file_input_stream(&fd, offset)?;
        Ok(self.table.push(InputStreamResource::new(stream))?)
    }

    fn write_via_stream(
        &mut self,
        fd: Desc,
        offset: u64,
    ) -> Result<Resource<OutputStreamResource>, FsError> {
        let stream = self.file_output_stream(&fd, Some(offset))?;
        Ok(self.table.push(OutputStreamResource::new(stream))?)
    }

    fn append_via_stream(&mut self, fd: Desc) -> Result<Resource<OutputStreamResource>, FsError> {
        let stream = self.file_output_stream(&fd, None)?;
        Ok(self.table.push(OutputStreamResource::new(stream))?)
    }

    fn advise(
        &mut self,
        fd: Desc,
        offset: u64,
        length: u64,
        advice: Advice,
    ) -> Result<(), FsError> {
        use rustix::fs::Advice as A;
        let file = self.file(&fd)?;
        let advice = match advice {
            Advice::Normal => A::Normal,
            Advice::Sequential => A::Sequential,
            Advice::Random => A::Random,
            Advice::WillNeed => A::WillNeed,
            Advice::DontNeed => A::DontNeed,
            Advice::NoReuse => A::NoReuse,
        };
        rustix::fs::fadvise(
            &*file.file,
            offset,
            std::num::NonZeroU64::new(length),
            advice,
        )
        .map_err(io::Error::from)?;
        Ok(())
    }

    fn sync_data(&mut self, fd: Desc) -> Result<(), FsError> {
        match self.descriptor(&fd)? {
            Descriptor::File(f) => f.file.sync_data()?,
            Descriptor::Dir(d) => rustix::fs::fsync(&*d.dir).map_err(io::Error::from)?,
        }
        Ok(())
    }

    fn get_flags(&mut self, fd: Desc) -> Result<DescriptorFlags, FsError> {
        Ok(match self.descriptor(&fd)? {
            Descriptor::File(f) => f.flags,
            Descriptor::Dir(d) => {
                let mut flags = DescriptorFlags::READ;
                if d.perms.contains(DirPerms::MUTATE) {
                    flags |= DescriptorFlags::MUTATE_DIRECTORY;
                }
                flags
            }
        })
    }

    fn get_type(&mut self, fd: Desc) -> Result<DescriptorType, FsError> {
        Ok(match self.descriptor(&fd)? {
            Descriptor::File(f) => descriptor_type(f.file.metadata()?.file_type()),
            Descriptor::Dir(_) => DescriptorType::Directory,
        })
    }

    fn set_size(&mut self, fd: Desc, size: u64) -> Result<(), FsError> {
        let file = self.file(&fd)?;
        file.require_write(ErrorCode::Invalid)?;
        file.file.set_len(size)?;
        Ok(())
    }

    fn set_times(
        &mut self,
        fd: Desc,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<(), FsError> {
        check_timestamp(&atime)?;
        check_timestamp(&mtime)?;
        let times = rustix::fs::Timestamps {
            last_access: rustix_timespec(&atime),
            last_modification: rustix_timespec(&mtime),
        };
        match self.descriptor(&fd)? {
            Descriptor::File(f) => {
                // Like futimens(2) (which needs ownership, not a writable descriptor) and
                // wasmtime: only the preopen's permission counts.
                if !f.perms.contains(FilePerms::WRITE) {
                    return Err(ErrorCode::NotPermitted.into());
                }
                rustix::fs::futimens(&*f.file, &times).map_err(io::Error::from)?;
            }
            Descriptor::Dir(d) => {
                let dir = d.require(DirPerms::MUTATE)?;
                rustix::fs::futimens(dir, &times).map_err(io::Error::from)?;
            }
        }
        Ok(())
    }

    fn read(&mut self, fd: Desc, length: u64, offset: u64) -> Result<(Vec<u8>, bool), FsError> {
        let file = self.file(&fd)?;
        if !file.can_read() {
            return Err(ErrorCode::BadDescriptor.into());
        }
        let wanted = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(crate::io::MAX_READ_BYTES);
        let mut buffer = vec![0u8; wanted];
        let n = streams::read_at(&file.file, &mut buffer, offset)?;
        buffer.truncate(n);
        let end_of_file = n < wanted || (wanted == 0 && offset >= file.file.metadata()?.len());
        Ok((buffer, end_of_file))
    }

    fn write(&mut self, fd: Desc, buffer: Vec<u8>, offset: u64) -> Result<u64, FsError> {
        let file = self.file(&fd)?;
        file.require_write(ErrorCode::BadDescriptor)?;
        let n = rustix::io::pwrite(&*file.file, &buffer, offset).map_err(io::Error::from)?;
        Ok(n as u64)
    }

    fn read_directory(&mut self, fd: Desc) -> Result<Resource<DirectoryEntryStream>, FsError> {
        let stream = DirectoryEntryStream {
            entries: self.directory_entries(&fd)?.into_iter(),
        };
        Ok(self.table.push(stream)?)
    }

    fn sync(&mut self, fd: Desc) -> Result<(), FsError> {
        match self.descriptor(&fd)? {
            Descriptor::File(f) => f.file.sync_all()?,
            Descriptor::Dir(d) => rustix::fs::fsync(&*d.dir).map_err(io::Error::from)?,
        }
        Ok(())
    }

    fn create_directory_at(&mut self, fd: Desc, path: String) -> Result<(), FsError> {
        self.dir(&fd)?
            .require(DirPerms::MUTATE)?
            .create_dir(&path)?;
        Ok(())
    }

    fn stat(&mut self, fd: Desc) -> Result<DescriptorStat, FsError> {
        Ok(descriptor_stat(&self.metadata(&fd)?))
    }

    fn stat_at(
        &mut self,
        fd: Desc,
        path_flags: PathFlags,
        path: String,
    ) -> Result<DescriptorStat, FsError> {
        Ok(descriptor_stat(&self.metadata_at(&fd, path_flags, &path)?))
    }

    fn set_times_at(
        &mut self,
        fd: Desc,
        path_flags: PathFlags,
        path: String,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<(), FsError> {
        let dir = self.dir(&fd)?.require(DirPerms::MUTATE)?;
        let atime = system_time_spec(&atime)?;
        let mtime = system_time_spec(&mtime)?;
        if path_flags.contains(PathFlags::SYMLINK_FOLLOW) {
            dir.set_times(&path, atime, mtime)?;
        } else {
            dir.set_symlink_times(&path, atime, mtime)?;
        }
        Ok(())
    }

    fn link_at(
        &mut self,
        fd: Desc,
        old_path_flags: PathFlags,
        old_path: String,
        new_fd: Desc,
        new_path: String,
    ) -> Result<(), FsError> {
        if old_path_flags.contains(PathFlags::SYMLINK_FOLLOW) {
            // Linking through a symlink is not supported portably (linkat's FOLLOW flag).
            return Err(ErrorCode::Invalid.into());
        }
        let old_dir = self.dir(&fd)?.require(DirPerms::MUTATE)?;
        let new_dir = self.dir(&new_fd)?.require(DirPerms::MUTATE)?;
        old_dir.hard_link(&old_path, new_dir, &new_path)?;
        Ok(())
    }

    fn open_at(
        &mut self,
        fd: Desc,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Desc, FsError> {
        let descriptor = self
            .open_descriptor(&fd, path_flags, &path, open_flags, flags)
            .map_err(|failure| failure.code)?;
        Ok(self.table.push(descriptor)?)
    }

    fn readlink_at(&mut self, fd: Desc, path: String) -> Result<String, FsError> {
        let dir = self.dir(&fd)?.require(DirPerms::READ)?;
        let target = dir.read_link_contents(&path)?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| ErrorCode::IllegalByteSequence.into())
    }

    fn remove_directory_at(&mut self, fd: Desc, path: String) -> Result<(), FsError> {
        self.dir(&fd)?
            .require(DirPerms::MUTATE)?
            .remove_dir(&path)?;
        Ok(())
    }

    fn rename_at(
        &mut self,
        fd: Desc,
        old_path: String,
        new_fd: Desc,
        new_path: String,
    ) -> Result<(), FsError> {
        let old_dir = self.dir(&fd)?.require(DirPerms::MUTATE)?;
        let new_dir = self.dir(&new_fd)?.require(DirPerms::MUTATE)?;
        old_dir.rename(&old_path, new_dir, &new_path)?;
        Ok(())
    }

    fn symlink_at(&mut self, fd: Desc, old_path: String, new_path: String) -> Result<(), FsError> {
        let dir = self.dir(&fd)?.require(DirPerms::MUTATE)?;
        if old_path.starts_with('/') {
            // An absolute target would point outside the sandbox.
            return Err(ErrorCode::NotPermitted.into());
        }
        dir.symlink(&old_path, &new_path)?;
        Ok(())
    }

    fn unlink_file_at(&mut self, fd: Desc, path: String) -> Result<(), FsError> {
        self.dir(&fd)?
            .require(DirPerms::MUTATE)?
            .remove_file(&path)?;
        Ok(())
    }

    fn is_same_object(&mut self, fd: Desc, other: Desc) -> wasmtime::Result<bool> {
        let (Ok(a), Ok(b)) = (self.metadata(&fd), self.metadata(&other)) else {
            // Both are live descriptors; a stat failure means we cannot tell.
            self.table.get(&fd)?;
            self.table.get(&other)?;
            return Ok(false);
        };
        Ok(a.dev() == b.dev() && a.ino() == b.ino())
    }

    fn metadata_hash(&mut self, fd: Desc) -> Result<MetadataHashValue, FsError> {
        Ok(metadata_hash(&self.metadata(&fd)?))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Desc,
        path_flags: PathFlags,
        path: String,
    ) -> Result<MetadataHashValue, FsError> {
        Ok(metadata_hash(&self.metadata_at(&fd, path_flags, &path)?))
    }

    fn drop(&mut self, fd: Desc) -> wasmtime::Result<()> {
        self.table.delete(fd)?;
        Ok(())
    }
}

impl types::HostDirectoryEntryStream for WasiCtxView<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<DirectoryEntryStream>,
    ) -> Result<Option<DirectoryEntry>, FsError> {
        match self.table.get_mut(&stream)?.entries.next() {
            None => Ok(None),
            Some(Ok(entry)) => Ok(Some(entry)),
            Some(Err(code)) => Err(code.into()),
        }
    }

    fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl preopens::Host for WasiCtxView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Desc, String)>> {
        let mut result = Vec::with_capacity(self.ctx.preopens.len());
        for preopen in &self.ctx.preopens {
            let descriptor = Descriptor::Dir(DirDescriptor {
                dir: preopen.dir.clone(),
                perms: preopen.perms,
                file_perms: preopen.file_perms,
            });
            result.push((self.table.push(descriptor)?, preopen.guest_path.clone()));
        }
        Ok(result)
    }
}
