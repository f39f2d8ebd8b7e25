//! `wasi:filesystem@0.3.0` over the 0.2 filesystem (the same descriptors in the same table,
//! the same `cap-std` sandbox and preopen permissions): each 0.3 function is the 0.2
//! operation with 0.3's types.
//!
//! - The `async func`s run the 0.2 operation when called (local file system calls answer
//!   from the page cache, as in 0.2).
//! - `read-via-stream`/`write-via-stream`/`append-via-stream` turn the 0.2 file streams into
//!   component-model streams ([`ByteProducer`]/[`ByteConsumer`]): reads go straight into
//!   the guest's buffer, writes come straight from guest memory, within the file stream's
//!   permit. A write's future resolves once every byte is written.
//! - `read-directory` streams the entries `readdir` returned when it was called.
//! - A stream function refused (a descriptor that may not read, say) returns a stream that
//!   ends at once and a future with the error.
//!
//! New timestamps before 1970 are refused with `invalid` (0.2's `datetime` is unsigned).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Access, Accessor, Destination, FutureReader, Resource, StreamProducer, StreamReader,
    StreamResult as Transfer,
};

use super::bindings::wasi::filesystem::{preopens, types as v3};
use super::streams::{
    ByteConsumer, ByteProducer, ErrorMap, flushing, outcome_future, resolved_future,
};
use crate::WasiCtxView;
use crate::bindings::wasi::clocks::wall_clock::Datetime;
use crate::bindings::wasi::filesystem::preopens as preopens2;
use crate::bindings::wasi::filesystem::types::{self as v2, HostDescriptor as _};
use crate::filesystem::{Descriptor, FsError};
use crate::io::StreamError;
use crate::linker::HasWasi;

type Desc = Resource<Descriptor>;

/// The 0.3 error code for a 0.2 one (0.3 dropped `would-block`).
fn code3(code: v2::ErrorCode) -> v3::ErrorCode {
    macro_rules! same {
        ($($name:ident),*) => {
            match code {
                $(v2::ErrorCode::$name => v3::ErrorCode::$name,)*
                v2::ErrorCode::WouldBlock => v3::ErrorCode::Other(Some("would-block".into())),
            }
        };
    }
    same!(
        Access,
        Already,
        BadDescriptor,
        Busy,
        Deadlock,
        Quota,
        Exist,
        FileTooLarge,
        IllegalByteSequence,
        InProgress,
        Interrupted,
        Invalid,
        Io,
        IsDirectory,
        Loop,
        TooManyLinks,
        MessageSize,
        NameTooLong,
        NoDevice,
        NoEntry,
        NoLock,
        InsufficientMemory,
        InsufficientSpace,
        NotDirectory,
        NotEmpty,
        NotRecoverable,
        Unsupported,
        NoTty,
        NoSuchDevice,
        Overflow,
        NotPermitted,
        Pipe,
        ReadOnly,
        InvalidSeek,
        TextFileBusy,
        CrossDevice
    )
}

/// A 0.2 result as the 0.3 binding returns it: codes to the guest, traps as traps.
fn returned<T>(result: Result<T, FsError>) -> wasmtime::Result<Result<T, v3::ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(FsError::Code(code)) => Ok(Err(code3(code))),
        Err(FsError::Trap(trap)) => Err(trap),
    }
}

/// The error a failed file stream reports through its future, or its trap.
fn stream_code(error: StreamError) -> wasmtime::Result<v3::ErrorCode> {
    match error {
        StreamError::Closed => Ok(v3::ErrorCode::Io),
        StreamError::LastOperationFailed(error) => {
            Ok(match error.downcast_ref::<std::io::Error>() {
                Some(io) => code3(crate::filesystem::error_code_from_io(io)),
                None => v3::ErrorCode::Other(Some(format!("{error:#}"))),
            })
        }
        StreamError::Trap(trap) => Err(trap),
    }
}

const STREAM_CODE: ErrorMap<v3::ErrorCode> = stream_code;

fn type3(kind: v2::DescriptorType) -> v3::DescriptorType {
    use v2::DescriptorType as T;
    match kind {
        T::BlockDevice => v3::DescriptorType::BlockDevice,
        T::CharacterDevice => v3::DescriptorType::CharacterDevice,
        T::Directory => v3::DescriptorType::Directory,
        T::Fifo => v3::DescriptorType::Fifo,
        T::SymbolicLink => v3::DescriptorType::SymbolicLink,
        T::RegularFile => v3::DescriptorType::RegularFile,
        T::Socket => v3::DescriptorType::Socket,
        T::Unknown => v3::DescriptorType::Other(None),
    }
}

/// The 0.2 and 0.3 descriptor flags, which have the same names and meanings.
fn descriptor_flag_pairs() -> [(v2::DescriptorFlags, v3::DescriptorFlags); 6] {
    [
        (v2::DescriptorFlags::READ, v3::DescriptorFlags::READ),
        (v2::DescriptorFlags::WRITE, v3::DescriptorFlags::WRITE),
        (
            v2::DescriptorFlags::FILE_INTEGRITY_SYNC,
            v3::DescriptorFlags::FILE_INTEGRITY_SYNC,
        ),
        (
            v2::DescriptorFlags::DATA_INTEGRITY_SYNC,
            v3::DescriptorFlags::DATA_INTEGRITY_SYNC,
        ),
        (
            v2::DescriptorFlags::REQUESTED_WRITE_SYNC,
            v3::DescriptorFlags::REQUESTED_WRITE_SYNC,
        ),
        (
            v2::DescriptorFlags::MUTATE_DIRECTORY,
            v3::DescriptorFlags::MUTATE_DIRECTORY,
        ),
    ]
}

fn flags2(flags: v3::DescriptorFlags) -> v2::DescriptorFlags {
    descriptor_flag_pairs()
        .into_iter()
        .filter(|(_, v3)| flags.contains(*v3))
        .fold(v2::DescriptorFlags::empty(), |all, (v2, _)| all | v2)
}

fn flags3(flags: v2::DescriptorFlags) -> v3::DescriptorFlags {
    descriptor_flag_pairs()
        .into_iter()
        .filter(|(v2, _)| flags.contains(*v2))
        .fold(v3::DescriptorFlags::empty(), |all, (_, v3)| all | v3)
}

fn path2(flags: v3::PathFlags) -> v2::PathFlags {
    if flags.contains(v3::PathFlags::SYMLINK_FOLLOW) {
        v2::PathFlags::SYMLINK_FOLLOW
    } else {
        v2::PathFlags::empty()
    }
}

fn open2(flags: v3::OpenFlags) -> v2::OpenFlags {
    [
        (v3::OpenFlags::CREATE, v2::OpenFlags::CREATE),
        (v3::OpenFlags::DIRECTORY, v2::OpenFlags::DIRECTORY),
        (v3::OpenFlags::EXCLUSIVE, v2::OpenFlags::EXCLUSIVE),
        (v3::OpenFlags::TRUNCATE, v2::OpenFlags::TRUNCATE),
    ]
    .into_iter()
    .filter(|(v3, _)| flags.contains(*v3))
    .fold(v2::OpenFlags::empty(), |all, (_, v2)| all | v2)
}

fn instant3(time: Datetime) -> v3::Instant {
    v3::Instant {
        seconds: i64::try_from(time.seconds).unwrap_or(i64::MAX),
        nanoseconds: time.nanoseconds,
    }
}

fn timestamp2(timestamp: v3::NewTimestamp) -> Result<v2::NewTimestamp, FsError> {
    Ok(match timestamp {
        v3::NewTimestamp::NoChange => v2::NewTimestamp::NoChange,
        v3::NewTimestamp::Now => v2::NewTimestamp::Now,
        v3::NewTimestamp::Timestamp(instant) => {
            let seconds = u64::try_from(instant.seconds).map_err(|_| v2::ErrorCode::Invalid)?;
            v2::NewTimestamp::Timestamp(Datetime {
                seconds,
                nanoseconds: instant.nanoseconds,
            })
        }
    })
}

fn stat3(stat: v2::DescriptorStat) -> v3::DescriptorStat {
    v3::DescriptorStat {
        type_: type3(stat.type_),
        link_count: stat.link_count,
        size: stat.size,
        data_access_timestamp: stat.data_access_timestamp.map(instant3),
        data_modification_timestamp: stat.data_modification_timestamp.map(instant3),
        status_change_timestamp: stat.status_change_timestamp.map(instant3),
    }
}

fn hash3(hash: v2::MetadataHashValue) -> v3::MetadataHashValue {
    v3::MetadataHashValue {
        lower: hash.lower,
        upper: hash.upper,
    }
}

fn advice2(advice: v3::Advice) -> v2::Advice {
    match advice {
        v3::Advice::Normal => v2::Advice::Normal,
        v3::Advice::Sequential => v2::Advice::Sequential,
        v3::Advice::Random => v2::Advice::Random,
        v3::Advice::WillNeed => v2::Advice::WillNeed,
        v3::Advice::DontNeed => v2::Advice::DontNeed,
        v3::Advice::NoReuse => v2::Advice::NoReuse,
    }
}

/// Runs a 0.2 operation on the instance's context.
fn on_view<U: 'static, R>(
    accessor: &Accessor<U, HasWasi>,
    call: impl FnOnce(&mut WasiCtxView<'_>) -> R,
) -> R {
    accessor.with(|mut access| call(&mut access.get()))
}

impl v3::Host for WasiCtxView<'_> {}

impl v3::HostDescriptor for WasiCtxView<'_> {
    fn drop(&mut self, fd: Desc) -> wasmtime::Result<()> {
        self.table.delete(fd)?;
        Ok(())
    }
}

type Outcome = Result<(), v3::ErrorCode>;

/// The write end of a refused stream call: the guest's stream is closed, the future
/// carries the error (or the call traps).
fn refused_write<U: 'static>(
    host: &mut Access<'_, U, HasWasi>,
    mut data: StreamReader<u8>,
    error: FsError,
) -> wasmtime::Result<FutureReader<Outcome>> {
    data.close(&mut *host)?;
    let code = returned::<()>(Err(error))?;
    resolved_future(host, code)
}

/// Pipes the guest's `data` into the file stream `opened` returned.
fn write_file<U: 'static>(
    mut host: Access<'_, U, HasWasi>,
    data: StreamReader<u8>,
    opened: Result<impl crate::io::OutputStream, FsError>,
) -> wasmtime::Result<FutureReader<Outcome>> {
    let stream = match opened {
        Ok(stream) => stream,
        Err(error) => return refused_write(&mut host, data, error),
    };
    let (sender, receiver) = oneshot::channel();
    let finish = flushing(STREAM_CODE, v3::ErrorCode::Io);
    data.pipe(
        &mut host,
        ByteConsumer::new(Box::new(stream), sender, STREAM_CODE, finish),
    )?;
    outcome_future(&mut host, receiver)
}

impl<U: 'static> v3::HostDescriptorWithStore<U> for HasWasi {
    fn read_via_stream(
        mut host: Access<'_, U, Self>,
        fd: Desc,
        offset: u64,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Outcome>)> {
        let stream = match host.get().file_input_stream(&fd, offset) {
            Ok(stream) => stream,
            Err(error) => {
                let code = returned::<()>(Err(error))?;
                // A stream that ends at once.
                let ended = StreamReader::new(&mut host, std::iter::empty::<u8>())?;
                return Ok((ended, resolved_future(&mut host, code)?));
            }
        };
        let (sender, receiver) = oneshot::channel();
        let producer = ByteProducer::new(Box::new(stream), sender, STREAM_CODE);
        let stream = StreamReader::new(&mut host, producer)?;
        Ok((stream, outcome_future(&mut host, receiver)?))
    }

    fn write_via_stream(
        mut host: Access<'_, U, Self>,
        fd: Desc,
        data: StreamReader<u8>,
        offset: u64,
    ) -> wasmtime::Result<FutureReader<Outcome>> {
        let opened = host.get().file_output_stream(&fd, Some(offset));
        write_file(host, data, opened)
    }

    fn append_via_stream(
        mut host: Access<'_, U, Self>,
        fd: Desc,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Outcome>> {
        let opened = host.get().file_output_stream(&fd, None);
        write_file(host, data, opened)
    }

    fn read_directory(
        mut host: Access<'_, U, Self>,
        fd: Desc,
    ) -> wasmtime::Result<(StreamReader<v3::DirectoryEntry>, FutureReader<Outcome>)> {
        let (sender, receiver) = oneshot::channel();
        let entries = match host.get().directory_entries(&fd) {
            Ok(entries) => entries,
            // Refused: the stream ends at once with the error.
            Err(FsError::Code(code)) => vec![Err(code)],
            Err(FsError::Trap(trap)) => return Err(trap),
        };
        let producer = DirectoryEntries {
            entries: entries.into_iter(),
            outcome: Some(sender),
        };
        let stream = StreamReader::new(&mut host, producer)?;
        Ok((stream, outcome_future(&mut host, receiver)?))
    }

    async fn advise(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        offset: u64,
        length: u64,
        advice: v3::Advice,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned(view.advise(fd, offset, length, advice2(advice)))
        })
    }

    async fn sync_data(accessor: &Accessor<U, Self>, fd: Desc) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| returned(view.sync_data(fd)))
    }

    async fn get_flags(
        accessor: &Accessor<U, Self>,
        fd: Desc,
    ) -> wasmtime::Result<Result<v3::DescriptorFlags, v3::ErrorCode>> {
        on_view(accessor, |view| returned(view.get_flags(fd).map(flags3)))
    }

    async fn get_type(
        accessor: &Accessor<U, Self>,
        fd: Desc,
    ) -> wasmtime::Result<Result<v3::DescriptorType, v3::ErrorCode>> {
        on_view(accessor, |view| returned(view.get_type(fd).map(type3)))
    }

    async fn set_size(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        size: u64,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| returned(view.set_size(fd, size)))
    }

    async fn set_times(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        data_access_timestamp: v3::NewTimestamp,
        data_modification_timestamp: v3::NewTimestamp,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned((|| {
                let access = timestamp2(data_access_timestamp)?;
                let modification = timestamp2(data_modification_timestamp)?;
                view.set_times(fd, access, modification)
            })())
        })
    }

    async fn sync(accessor: &Accessor<U, Self>, fd: Desc) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| returned(view.sync(fd)))
    }

    async fn create_directory_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path: String,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned(view.create_directory_at(fd, path))
        })
    }

    async fn stat(
        accessor: &Accessor<U, Self>,
        fd: Desc,
    ) -> wasmtime::Result<Result<v3::DescriptorStat, v3::ErrorCode>> {
        on_view(accessor, |view| returned(view.stat(fd).map(stat3)))
    }

    async fn stat_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path_flags: v3::PathFlags,
        path: String,
    ) -> wasmtime::Result<Result<v3::DescriptorStat, v3::ErrorCode>> {
        on_view(accessor, |view| {
            returned(view.stat_at(fd, path2(path_flags), path).map(stat3))
        })
    }

    async fn set_times_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path_flags: v3::PathFlags,
        path: String,
        data_access_timestamp: v3::NewTimestamp,
        data_modification_timestamp: v3::NewTimestamp,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned((|| {
                let access = timestamp2(data_access_timestamp)?;
                let modification = timestamp2(data_modification_timestamp)?;
                view.set_times_at(fd, path2(path_flags), path, access, modification)
            })())
        })
    }

    async fn link_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        old_path_flags: v3::PathFlags,
        old_path: String,
        new_descriptor: Desc,
        new_path: String,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned(view.link_at(
                fd,
                path2(old_path_flags),
                old_path,
                new_descriptor,
                new_path,
            ))
        })
    }

    async fn open_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path_flags: v3::PathFlags,
        path: String,
        open_flags: v3::OpenFlags,
        flags: v3::DescriptorFlags,
    ) -> wasmtime::Result<Result<Desc, v3::ErrorCode>> {
        on_view(accessor, |view| {
            returned(view.open_at(
                fd,
                path2(path_flags),
                path,
                open2(open_flags),
                flags2(flags),
            ))
        })
    }

    async fn readlink_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path: String,
    ) -> wasmtime::Result<Result<String, v3::ErrorCode>> {
        on_view(accessor, |view| returned(view.readlink_at(fd, path)))
    }

    async fn remove_directory_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path: String,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned(view.remove_directory_at(fd, path))
        })
    }

    async fn rename_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        old_path: String,
        new_descriptor: Desc,
        new_path: String,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned(view.rename_at(fd, old_path, new_descriptor, new_path))
        })
    }

    async fn symlink_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        old_path: String,
        new_path: String,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| {
            returned(view.symlink_at(fd, old_path, new_path))
        })
    }

    async fn unlink_file_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path: String,
    ) -> wasmtime::Result<Outcome> {
        on_view(accessor, |view| returned(view.unlink_file_at(fd, path)))
    }

    async fn is_same_object(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        other: Desc,
    ) -> wasmtime::Result<bool> {
        on_view(accessor, |view| view.is_same_object(fd, other))
    }

    async fn metadata_hash(
        accessor: &Accessor<U, Self>,
        fd: Desc,
    ) -> wasmtime::Result<Result<v3::MetadataHashValue, v3::ErrorCode>> {
        on_view(accessor, |view| returned(view.metadata_hash(fd).map(hash3)))
    }

    async fn metadata_hash_at(
        accessor: &Accessor<U, Self>,
        fd: Desc,
        path_flags: v3::PathFlags,
        path: String,
    ) -> wasmtime::Result<Result<v3::MetadataHashValue, v3::ErrorCode>> {
        on_view(accessor, |view| {
            returned(
                view.metadata_hash_at(fd, path2(path_flags), path)
                    .map(hash3),
            )
        })
    }
}

/// The stream of `read-directory`: the entries, then the future's result (the first
/// entry that failed ends the stream with its error).
struct DirectoryEntries {
    entries: std::vec::IntoIter<Result<v2::DirectoryEntry, v2::ErrorCode>>,
    outcome: Option<oneshot::Sender<Outcome>>,
}

impl<D> StreamProducer<D> for DirectoryEntries {
    type Item = v3::DirectoryEntry;
    type Buffer = Option<v3::DirectoryEntry>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, Self::Item, Self::Buffer>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<Transfer>> {
        if destination.remaining(&mut store) == Some(0) {
            return Poll::Ready(Ok(Transfer::Completed));
        }
        let result = match self.entries.next() {
            Some(Ok(entry)) => {
                destination.set_buffer(Some(v3::DirectoryEntry {
                    type_: type3(entry.type_),
                    name: entry.name,
                }));
                return Poll::Ready(Ok(Transfer::Completed));
            }
            Some(Err(code)) => Err(code3(code)),
            None => Ok(()),
        };
        if let Some(outcome) = self.outcome.take() {
            let _ = outcome.send(result);
        }
        Poll::Ready(Ok(Transfer::Dropped))
    }
}

impl preopens::Host for WasiCtxView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Desc, String)>> {
        preopens2::Host::get_directories(self)
    }
}
