//! WASI preview1 (`wasi_snapshot_preview1`) for core modules: a thin ABI layer over Weir's
//! WASI 0.2 host. Every call goes to the same host core as a component's: the filesystem's
//! capability checks and `cap-std` sandbox, Weir's streams (stdout keeps its non-blocking
//! writer; a `fd_write` is never followed by a flush), clocks, random and the resource
//! table. What this layer adds is preview1's shape: numbered descriptors with positions,
//! `errno` codes, and guest memory laid out as the witx describes.
//!
//! Descriptors have no fixed ceiling: a module may hold as many files open as the process
//! may (`mfile`/`nfile` report the OS limits), unlike the preview1 component adapter's
//! fixed table.
//!
//! Not provided (they return the code wasmtime returns): sockets (`sock_*`: `notsock`, there
//! are no preopened sockets), `proc_raise`, `fd_fdstat_set_rights`, `fd_allocate` (`notsup`).
//! `poll_oneoff` waits on clocks and stdin; files and stdout/stderr are always ready.

// The full ABI tables: not every value is used by the functions provided so far.
#[allow(dead_code)]
mod abi;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::RngCore;
use wasmtime::component::Resource;
use wasmtime::{Caller, Linker};

use crate::bindings::wasi::cli::{stderr, stdin, stdout};
use crate::bindings::wasi::clocks::wall_clock::Datetime;
use crate::bindings::wasi::filesystem::preopens;
use crate::bindings::wasi::filesystem::types::{
    self as fs, DescriptorFlags, DescriptorType, ErrorCode, HostDescriptor,
    HostDirectoryEntryStream, NewTimestamp, OpenFlags, PathFlags,
};
use crate::filesystem::{Descriptor, FsError};
use crate::io::{InputStreamResource, MAX_READ_BYTES, OutputStreamResource, StreamError};
use crate::{I32Exit, WasiCtxView, WasiView};
use abi::{Memory, errno, filetype, rights};

const MODULE: &str = "wasi_snapshot_preview1";

/// A preview1 call's failure: an `errno` for the guest, or a trap.
#[derive(Debug)]
pub(crate) enum P1Error {
    Errno(u16),
    Trap(wasmtime::Error),
}

pub(crate) type P1Result<T> = Result<T, P1Error>;

impl From<wasmtime::Error> for P1Error {
    fn from(error: wasmtime::Error) -> Self {
        P1Error::Trap(error)
    }
}

impl From<wasmtime::component::ResourceTableError> for P1Error {
    fn from(error: wasmtime::component::ResourceTableError) -> Self {
        P1Error::Trap(error.into())
    }
}

impl From<FsError> for P1Error {
    fn from(error: FsError) -> Self {
        match error {
            FsError::Code(code) => P1Error::Errno(errno_from_fs(code)),
            FsError::Trap(error) => P1Error::Trap(error),
        }
    }
}

impl From<StreamError> for P1Error {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::Closed => P1Error::Errno(errno::PIPE),
            StreamError::LastOperationFailed(_) => P1Error::Errno(errno::IO),
            StreamError::Trap(error) => P1Error::Trap(error),
        }
    }
}

fn errno_from_fs(code: ErrorCode) -> u16 {
    use ErrorCode as E;
    match code {
        E::Access => errno::ACCES,
        E::WouldBlock => errno::AGAIN,
        E::Already => errno::ALREADY,
        E::BadDescriptor => errno::BADF,
        E::Busy => errno::BUSY,
        E::Deadlock => errno::DEADLK,
        E::Quota => errno::DQUOT,
        E::Exist => errno::EXIST,
        E::FileTooLarge => errno::FBIG,
        E::IllegalByteSequence => errno::ILSEQ,
        E::InProgress => errno::INPROGRESS,
        E::Interrupted => errno::INTR,
        E::Invalid => errno::INVAL,
        E::Io => errno::IO,
        E::IsDirectory => errno::ISDIR,
        E::Loop => errno::LOOP,
        E::TooManyLinks => errno::MLINK,
        E::MessageSize => errno::MSGSIZE,
        E::NameTooLong => errno::NAMETOOLONG,
        E::NoDevice => errno::NODEV,
        E::NoEntry => errno::NOENT,
        E::NoLock => errno::NOLCK,
        E::InsufficientMemory => errno::NOMEM,
        E::InsufficientSpace => errno::NOSPC,
        E::NotDirectory => errno::NOTDIR,
        E::NotEmpty => errno::NOTEMPTY,
        E::NotRecoverable => errno::NOTRECOVERABLE,
        E::Unsupported => errno::NOTSUP,
        E::NoTty => errno::NOTTY,
        E::NoSuchDevice => errno::NXIO,
        E::Overflow => errno::OVERFLOW,
        // A path that would leave the sandbox, or a write through a read-only preopen: `perm`,
        // as wasmtime reports it (rights missing from a descriptor stay `notcapable`).
        E::NotPermitted => errno::PERM,
        E::Pipe => errno::PIPE,
        E::ReadOnly => errno::ROFS,
        E::InvalidSeek => errno::SPIPE,
        E::TextFileBusy => errno::TXTBSY,
        E::CrossDevice => errno::XDEV,
    }
}

/// One open preview1 descriptor.
enum Fd {
    /// stdin, and whether it is a terminal.
    Stdin(Resource<InputStreamResource>, bool),
    /// stdout or stderr, and whether it is a terminal.
    Output(Resource<OutputStreamResource>, bool),
    File(FileFd),
    Dir(DirFd),
}

struct FileFd {
    desc: Resource<Descriptor>,
    position: u64,
    append: bool,
}

struct DirFd {
    desc: Resource<Descriptor>,
    /// The guest path, for a preopen (`fd_prestat_*`).
    preopen: Option<String>,
}

fn borrow<T: 'static>(resource: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(resource.rep())
}

/// The preview1 descriptor table of one instance, created at its first preview1 call:
/// 0, 1, 2 are stdio, the preopens follow from 3.
pub(crate) struct P1State {
    fds: BTreeMap<u32, Fd>,
}

impl P1State {
    fn new(view: &mut WasiCtxView<'_>) -> wasmtime::Result<Self> {
        let mut fds = BTreeMap::new();
        let terminals = [
            view.ctx.stdin.is_terminal(),
            view.ctx.stdout.is_terminal(),
            view.ctx.stderr.is_terminal(),
        ];
        fds.insert(0, Fd::Stdin(stdin::Host::get_stdin(view)?, terminals[0]));
        fds.insert(1, Fd::Output(stdout::Host::get_stdout(view)?, terminals[1]));
        fds.insert(2, Fd::Output(stderr::Host::get_stderr(view)?, terminals[2]));
        for (desc, path) in preopens::Host::get_directories(view)? {
            let fd = fds.len() as u32;
            fds.insert(
                fd,
                Fd::Dir(DirFd {
                    desc,
                    preopen: Some(path),
                }),
            );
        }
        Ok(P1State { fds })
    }

    /// The lowest free descriptor number.
    fn insert(&mut self, fd: Fd) -> P1Result<u32> {
        let mut number = 0u32;
        for &used in self.fds.keys() {
            if used != number {
                break;
            }
            number = number.checked_add(1).ok_or(P1Error::Errno(errno::NFILE))?;
        }
        self.fds.insert(number, fd);
        Ok(number)
    }
}

/// Runs `f` with the instance's preview1 table (created on first use) and its WASI view.
fn with_state<R>(
    view: &mut WasiCtxView<'_>,
    f: impl FnOnce(&mut P1State, &mut WasiCtxView<'_>) -> P1Result<R>,
) -> P1Result<R> {
    let mut state = match view.ctx.p1.take() {
        Some(state) => state,
        None => P1State::new(view)?,
    };
    let result = f(&mut state, view);
    view.ctx.p1 = Some(state);
    result
}

fn fd_entry(state: &mut P1State, fd: u32) -> P1Result<&mut Fd> {
    state.fds.get_mut(&fd).ok_or(P1Error::Errno(errno::BADF))
}

fn file(state: &mut P1State, fd: u32) -> P1Result<&mut FileFd> {
    match fd_entry(state, fd)? {
        Fd::File(file) => Ok(file),
        Fd::Dir(_) => Err(P1Error::Errno(errno::ISDIR)),
        _ => Err(P1Error::Errno(errno::SPIPE)),
    }
}

fn dir(state: &mut P1State, fd: u32) -> P1Result<Resource<Descriptor>> {
    match fd_entry(state, fd)? {
        Fd::Dir(dir) => Ok(borrow(&dir.desc)),
        _ => Err(P1Error::Errno(errno::NOTDIR)),
    }
}

/// The descriptor behind a file or directory fd (not stdio).
fn descriptor(state: &mut P1State, fd: u32) -> P1Result<Resource<Descriptor>> {
    match fd_entry(state, fd)? {
        Fd::File(file) => Ok(borrow(&file.desc)),
        Fd::Dir(dir) => Ok(borrow(&dir.desc)),
        _ => Err(P1Error::Errno(errno::BADF)),
    }
}

fn memory<'a, T: WasiView>(caller: &'a mut Caller<'_, T>) -> P1Result<(Memory<'a>, &'a mut T)> {
    let memory = caller
        .get_export("memory")
        .and_then(|export| export.into_memory())
        .ok_or_else(|| {
            P1Error::Trap(wasmtime::format_err!(
                "{MODULE}: the module exports no memory named `memory`"
            ))
        })?;
    let (bytes, data) = memory.data_and_store_mut(caller);
    Ok((Memory(bytes), data))
}

/// The function's `errno` result, or the trap.
fn finish(result: P1Result<()>) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(i32::from(errno::SUCCESS)),
        Err(P1Error::Errno(code)) => Ok(i32::from(code)),
        Err(P1Error::Trap(error)) => Err(error),
    }
}

fn filetype_of(kind: DescriptorType) -> u8 {
    match kind {
        DescriptorType::BlockDevice => filetype::BLOCK_DEVICE,
        DescriptorType::CharacterDevice => filetype::CHARACTER_DEVICE,
        DescriptorType::Directory => filetype::DIRECTORY,
        DescriptorType::RegularFile => filetype::REGULAR_FILE,
        DescriptorType::SymbolicLink => filetype::SYMBOLIC_LINK,
        DescriptorType::Socket => filetype::SOCKET_STREAM,
        DescriptorType::Fifo | DescriptorType::Unknown => filetype::UNKNOWN,
    }
}

fn stdio_type(terminal: bool) -> u8 {
    if terminal {
        filetype::CHARACTER_DEVICE
    } else {
        filetype::UNKNOWN
    }
}

fn nanos(datetime: Option<Datetime>) -> u64 {
    datetime.map_or(0, |d| {
        d.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.nanoseconds))
    })
}

/// Writes a `filestat` (64 bytes) at `ptr`. `dev` is 0: WASI 0.2 does not report devices.
fn put_filestat(
    mem: &mut Memory<'_>,
    ptr: u32,
    stat: &fs::DescriptorStat,
    inode: u64,
) -> P1Result<()> {
    mem.bytes_mut(ptr, 64)?.fill(0);
    mem.put_u64(ptr + 8, inode)?;
    mem.put_u8(ptr + 16, filetype_of(stat.type_))?;
    mem.put_u64(ptr + 24, stat.link_count)?;
    mem.put_u64(ptr + 32, stat.size)?;
    mem.put_u64(ptr + 40, nanos(stat.data_access_timestamp))?;
    mem.put_u64(ptr + 48, nanos(stat.data_modification_timestamp))?;
    mem.put_u64(ptr + 56, nanos(stat.status_change_timestamp))
}

/// Releases what a closed (or renumbered-over) descriptor held.
fn close_entry(view: &mut WasiCtxView<'_>, entry: Fd) -> P1Result<()> {
    match entry {
        Fd::File(file) => HostDescriptor::drop(view, file.desc)?,
        Fd::Dir(dir) => HostDescriptor::drop(view, dir.desc)?,
        Fd::Stdin(stream, _) => crate::p2::io::IoOps(view.table).drop_input(stream)?,
        Fd::Output(stream, _) => crate::p2::io::IoOps(view.table).drop_output(stream)?,
    }
    Ok(())
}

/// A call that takes a directory descriptor and one path, and returns nothing.
fn at_path(
    mem: &Memory<'_>,
    view: &mut WasiCtxView<'_>,
    fd: i32,
    path: i32,
    len: i32,
    op: fn(&mut WasiCtxView<'_>, Resource<Descriptor>, String) -> Result<(), FsError>,
) -> P1Result<()> {
    let path = mem.string(path as u32, len as u32)?;
    with_state(view, |state, view| {
        let desc = dir(state, fd as u32)?;
        Ok(op(view, desc, path)?)
    })
}

fn path_flags(lookup: u32) -> PathFlags {
    if lookup & abi::LOOKUP_SYMLINK_FOLLOW != 0 {
        PathFlags::SYMLINK_FOLLOW
    } else {
        PathFlags::empty()
    }
}

fn new_timestamp(value: u64, set: bool, now: bool) -> P1Result<NewTimestamp> {
    match (set, now) {
        (true, true) => Err(P1Error::Errno(errno::INVAL)),
        (true, false) => Ok(NewTimestamp::Timestamp(Datetime {
            seconds: value / 1_000_000_000,
            nanoseconds: (value % 1_000_000_000) as u32,
        })),
        (false, true) => Ok(NewTimestamp::Now),
        (false, false) => Ok(NewTimestamp::NoChange),
    }
}

fn timestamps(atim: u64, mtim: u64, flags: u16) -> P1Result<(NewTimestamp, NewTimestamp)> {
    Ok((
        new_timestamp(
            atim,
            flags & abi::FST_ATIM != 0,
            flags & abi::FST_ATIM_NOW != 0,
        )?,
        new_timestamp(
            mtim,
            flags & abi::FST_MTIM != 0,
            flags & abi::FST_MTIM_NOW != 0,
        )?,
    ))
}

/// Nanoseconds of `clock` now.
fn clock_now(id: u32) -> P1Result<u64> {
    use rustix::time::{ClockId, clock_gettime};
    let clock = match id {
        abi::CLOCK_REALTIME => {
            let since = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            return Ok(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
        }
        abi::CLOCK_MONOTONIC => ClockId::Monotonic,
        abi::CLOCK_PROCESS_CPUTIME => ClockId::ProcessCPUTime,
        abi::CLOCK_THREAD_CPUTIME => ClockId::ThreadCPUTime,
        _ => return Err(P1Error::Errno(errno::INVAL)),
    };
    let t = clock_gettime(clock);
    Ok((t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64))
}

/// Writes `list` as preview1's `argv`/`environ` pair: pointers at `ptrs`, NUL-terminated
/// strings from `buf`.
fn put_strings(mem: &mut Memory<'_>, ptrs: u32, buf: u32, list: &[String]) -> P1Result<()> {
    let fault = || P1Error::Errno(errno::FAULT);
    let mut at = buf;
    for (i, item) in list.iter().enumerate() {
        let slot = u32::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(4))
            .and_then(|offset| ptrs.checked_add(offset))
            .ok_or_else(fault)?;
        mem.put_u32(slot, at)?;
        mem.write(at, item.as_bytes())?;
        let end = at.checked_add(item.len() as u32).ok_or_else(fault)?;
        mem.put_u8(end, 0)?;
        at = end.checked_add(1).ok_or_else(fault)?;
    }
    Ok(())
}

fn put_sizes(mem: &mut Memory<'_>, count: u32, size: u32, list: &[String]) -> P1Result<()> {
    let bytes: usize = list.iter().map(|s| s.len() + 1).sum();
    mem.put_u32(count, list.len() as u32)?;
    mem.put_u32(
        size,
        u32::try_from(bytes).map_err(|_| P1Error::Errno(errno::TOOBIG))?,
    )
}

fn environ(view: &WasiCtxView<'_>) -> Vec<String> {
    view.ctx
        .env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

macro_rules! sync_fn {
    ($linker:ident, $name:literal, |$mem:ident, $view:ident $(, $arg:ident : $ty:ty)*| $body:block) => {
        $linker.func_wrap(
            MODULE,
            $name,
            |mut caller: Caller<'_, T>, $($arg: $ty),*| -> wasmtime::Result<i32> {
                finish((|| -> P1Result<()> {
                    let (mut $mem, data) = memory(&mut caller)?;
                    let $view = &mut data.wasi();
                    let _ = &mut $mem;
                    $body
                })())
            },
        )?;
    };
}

/// Adds `wasi_snapshot_preview1` to a core-module [`Linker`], for engines with async support
/// (reads from stdin, writes to stdout and `poll_oneoff` wait without blocking the thread).
/// Run the module with [`crate::command::run_module_async`].
///
/// ```no_run
/// # struct State { wasi: weir::WasiCtx, table: wasmtime::component::ResourceTable }
/// # impl weir::WasiView for State {
/// #     fn wasi(&mut self) -> weir::WasiCtxView<'_> {
/// #         weir::WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
/// #     }
/// # }
/// # async fn run() -> wasmtime::Result<()> {
/// let engine = wasmtime::Engine::default();
/// let mut linker = wasmtime::Linker::<State>::new(&engine);
/// weir::p1::add_to_linker_async(&mut linker)?;
/// let wasi = weir::WasiCtxBuilder::new().inherit_stdio().arg("hello").build();
/// let table = wasmtime::component::ResourceTable::new();
/// let mut store = wasmtime::Store::new(&engine, State { wasi, table });
/// let module = wasmtime::Module::from_file(&engine, "examples/hello-p1.wasm")?;
/// let outcome = weir::command::run_module_async(&mut store, &linker, &module).await?;
/// println!("exit status {}", outcome.exit_code());
/// # Ok(()) }
/// ```
pub fn add_to_linker_async<T: WasiView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    add_functions(linker, false)
}

/// Adds `wasi_snapshot_preview1` to a core-module [`Linker`], for engines without async
/// support: a call that waits (stdin, stdout, `poll_oneoff`) blocks the calling thread. Run
/// the module with [`crate::command::run_module_sync`].
pub fn add_to_linker_sync<T: WasiView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    add_functions(linker, true)
}

fn add_functions<T: WasiView + Send + 'static>(
    linker: &mut Linker<T>,
    blocking: bool,
) -> wasmtime::Result<()> {
    sync_fn!(linker, "args_get", |mem, view, argv: i32, buf: i32| {
        put_strings(&mut mem, argv as u32, buf as u32, &view.ctx.args)
    });
    sync_fn!(
        linker,
        "args_sizes_get",
        |mem, view, count: i32, size: i32| {
            put_sizes(&mut mem, count as u32, size as u32, &view.ctx.args)
        }
    );
    sync_fn!(linker, "environ_get", |mem, view, env: i32, buf: i32| {
        put_strings(&mut mem, env as u32, buf as u32, &environ(view))
    });
    sync_fn!(
        linker,
        "environ_sizes_get",
        |mem, view, count: i32, size: i32| {
            put_sizes(&mut mem, count as u32, size as u32, &environ(view))
        }
    );
    sync_fn!(linker, "clock_res_get", |mem, view, id: i32, out: i32| {
        let _ = view;
        let clock = match id as u32 {
            abi::CLOCK_REALTIME => rustix::time::ClockId::Realtime,
            abi::CLOCK_MONOTONIC => rustix::time::ClockId::Monotonic,
            abi::CLOCK_PROCESS_CPUTIME => rustix::time::ClockId::ProcessCPUTime,
            abi::CLOCK_THREAD_CPUTIME => rustix::time::ClockId::ThreadCPUTime,
            _ => return Err(P1Error::Errno(errno::INVAL)),
        };
        let res = rustix::time::clock_getres(clock);
        let ns = (res.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(res.tv_nsec as u64)
            .max(1);
        mem.put_u64(out as u32, ns)
    });
    sync_fn!(
        linker,
        "clock_time_get",
        |mem, view, id: i32, _precision: i64, out: i32| {
            let _ = view;
            mem.put_u64(out as u32, clock_now(id as u32)?)
        }
    );
    sync_fn!(linker, "random_get", |mem, view, buf: i32, len: i32| {
        let len = len as u32;
        if u64::from(len) > view.ctx.max_random_bytes {
            return Err(P1Error::Trap(wasmtime::format_err!(
                "{MODULE}.random_get: {len} bytes requested, the limit is {} (requested len \
                 {len} exceeds limit {})",
                view.ctx.max_random_bytes,
                view.ctx.max_random_bytes
            )));
        }
        view.ctx
            .secure_random
            .fill_bytes(mem.bytes_mut(buf as u32, len)?);
        Ok(())
    });
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_caller: Caller<'_, T>, code: i32| -> wasmtime::Result<()> {
            // Kept whatever its value, as the process's exit status (wasmtime 48 refuses 126
            // and up with an error; programs calling exit(255) mean 255).
            Err(wasmtime::Error::new(I32Exit(code)))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proc_raise",
        |_caller: Caller<'_, T>, _signal: i32| -> wasmtime::Result<i32> {
            Ok(i32::from(errno::NOTSUP))
        },
    )?;
    sync_fn!(linker, "sched_yield", |mem, view| {
        let _ = view;
        Ok(())
    });

    // Descriptors.
    sync_fn!(linker, "fd_close", |mem, view, fd: i32| {
        with_state(view, |state, view| {
            let entry = state
                .fds
                .remove(&(fd as u32))
                .ok_or(P1Error::Errno(errno::BADF))?;
            close_entry(view, entry)?;
            Ok(())
        })
    });
    sync_fn!(linker, "fd_prestat_get", |mem, view, fd: i32, out: i32| {
        with_state(view, |state, _| match fd_entry(state, fd as u32)? {
            Fd::Dir(DirFd {
                preopen: Some(path),
                ..
            }) => {
                let prestat = mem.bytes_mut(out as u32, 8)?;
                prestat[..4].copy_from_slice(&0u32.to_le_bytes());
                prestat[4..].copy_from_slice(&(path.len() as u32).to_le_bytes());
                Ok(())
            }
            _ => Err(P1Error::Errno(errno::BADF)),
        })
    });
    sync_fn!(
        linker,
        "fd_prestat_dir_name",
        |mem, view, fd: i32, buf: i32, len: i32| {
            with_state(view, |state, _| match fd_entry(state, fd as u32)? {
                Fd::Dir(DirFd {
                    preopen: Some(path),
                    ..
                }) => {
                    if path.len() > len as u32 as usize {
                        return Err(P1Error::Errno(errno::NAMETOOLONG));
                    }
                    mem.write(buf as u32, path.as_bytes())
                }
                _ => Err(P1Error::Errno(errno::BADF)),
            })
        }
    );
    sync_fn!(linker, "fd_fdstat_get", |mem, view, fd: i32, out: i32| {
        let out = out as u32;
        let (kind, flags, base) = with_state(view, |state, view| {
            Ok(match fd_entry(state, fd as u32)? {
                // As wasmtime: a character device only when it is a terminal (programs ask
                // `isatty` this way), and only the direction the stream has.
                Fd::Stdin(_, tty) => (
                    stdio_type(*tty),
                    0,
                    rights::FD_READ | rights::POLL_FD_READWRITE,
                ),
                Fd::Output(_, tty) => (
                    stdio_type(*tty),
                    0,
                    rights::FD_WRITE | rights::POLL_FD_READWRITE,
                ),
                Fd::File(file) => {
                    let desc = borrow(&file.desc);
                    let append = file.append;
                    let kind = filetype_of(HostDescriptor::get_type(view, borrow(&desc))?);
                    let granted = HostDescriptor::get_flags(view, desc)?;
                    let mut base = rights::FILE;
                    if !granted.contains(DescriptorFlags::READ) {
                        base &= !rights::FD_READ;
                    }
                    if !granted.contains(DescriptorFlags::WRITE) {
                        base &= !(rights::FD_WRITE
                            | rights::FD_ALLOCATE
                            | rights::FD_FILESTAT_SET_SIZE
                            | rights::FD_DATASYNC);
                    }
                    let flags = if append { abi::FDFLAGS_APPEND } else { 0 };
                    (kind, flags, base)
                }
                Fd::Dir(_) => (filetype::DIRECTORY, 0, rights::DIRECTORY),
            })
        })?;
        mem.bytes_mut(out, 24)?.fill(0);
        mem.put_u8(out, kind)?;
        mem.put_u16(out + 2, flags)?;
        mem.put_u64(out + 8, base)?;
        let inheriting = if kind == filetype::DIRECTORY {
            rights::DIRECTORY | rights::FILE
        } else {
            0
        };
        mem.put_u64(out + 16, inheriting)
    });
    sync_fn!(
        linker,
        "fd_fdstat_set_flags",
        |mem, view, fd: i32, flags: i32| {
            let flags = flags as u16;
            with_state(view, |state, _| match fd_entry(state, fd as u32)? {
                Fd::File(file) => {
                    if flags & !(abi::FDFLAGS_APPEND | abi::FDFLAGS_NONBLOCK) != 0 {
                        // The sync flags cannot be changed on an open descriptor (as wasmtime).
                        return Err(P1Error::Errno(errno::INVAL));
                    }
                    file.append = flags & abi::FDFLAGS_APPEND != 0;
                    Ok(())
                }
                Fd::Dir(_) => Err(P1Error::Errno(errno::NOTSUP)),
                _ => Err(P1Error::Errno(errno::BADF)),
            })
        }
    );
    sync_fn!(
        linker,
        "fd_fdstat_set_rights",
        |mem, view, fd: i32, _base: i64, _inheriting: i64| {
            with_state(view, |state, _| {
                fd_entry(state, fd as u32)?;
                Err(P1Error::Errno(errno::NOTSUP))
            })
        }
    );
    sync_fn!(
        linker,
        "fd_seek",
        |mem, view, fd: i32, offset: i64, whence: i32, out: i32| {
            let position = with_state(view, |state, view| {
                let file = file(state, fd as u32)?;
                let base = match u8::try_from(whence).unwrap_or(u8::MAX) {
                    abi::WHENCE_SET => 0,
                    abi::WHENCE_CUR => file.position as i128,
                    abi::WHENCE_END => HostDescriptor::stat(view, borrow(&file.desc))?.size as i128,
                    _ => return Err(P1Error::Errno(errno::INVAL)),
                };
                let target = base + i128::from(offset);
                let target = u64::try_from(target).map_err(|_| P1Error::Errno(errno::INVAL))?;
                file.position = target;
                Ok(target)
            })?;
            mem.put_u64(out as u32, position)
        }
    );
    sync_fn!(linker, "fd_tell", |mem, view, fd: i32, out: i32| {
        let position = with_state(view, |state, _| Ok(file(state, fd as u32)?.position))?;
        mem.put_u64(out as u32, position)
    });
    sync_fn!(linker, "fd_filestat_get", |mem, view, fd: i32, out: i32| {
        let out = out as u32;
        let stat = with_state(view, |state, view| match fd_entry(state, fd as u32)? {
            Fd::Stdin(..) | Fd::Output(..) => Ok(None),
            _ => {
                let desc = descriptor(state, fd as u32)?;
                let stat = HostDescriptor::stat(view, borrow(&desc))?;
                let inode = HostDescriptor::metadata_hash(view, desc)?.lower;
                Ok(Some((stat, inode)))
            }
        })?;
        match stat {
            Some((stat, inode)) => put_filestat(&mut mem, out, &stat, inode),
            None => {
                mem.bytes_mut(out, 64)?.fill(0);
                mem.put_u8(out + 16, filetype::UNKNOWN)
            }
        }
    });
    sync_fn!(
        linker,
        "fd_filestat_set_size",
        |mem, view, fd: i32, size: i64| {
            with_state(view, |state, view| {
                let desc = borrow(&file(state, fd as u32)?.desc);
                Ok(HostDescriptor::set_size(view, desc, size as u64)?)
            })
        }
    );
    sync_fn!(
        linker,
        "fd_filestat_set_times",
        |mem, view, fd: i32, atim: i64, mtim: i64, flags: i32| {
            let (atime, mtime) = timestamps(atim as u64, mtim as u64, flags as u16)?;
            with_state(view, |state, view| {
                let desc = descriptor(state, fd as u32)?;
                Ok(HostDescriptor::set_times(view, desc, atime, mtime)?)
            })
        }
    );
    sync_fn!(linker, "fd_sync", |mem, view, fd: i32| {
        with_state(view, |state, view| {
            let desc = descriptor(state, fd as u32)?;
            Ok(HostDescriptor::sync(view, desc)?)
        })
    });
    sync_fn!(linker, "fd_datasync", |mem, view, fd: i32| {
        with_state(view, |state, view| {
            let desc = descriptor(state, fd as u32)?;
            Ok(HostDescriptor::sync_data(view, desc)?)
        })
    });
    sync_fn!(
        linker,
        "fd_advise",
        |mem, view, fd: i32, offset: i64, len: i64, advice: i32| {
            let advice = match advice {
                0 => fs::Advice::Normal,
                1 => fs::Advice::Sequential,
                2 => fs::Advice::Random,
                3 => fs::Advice::WillNeed,
                4 => fs::Advice::DontNeed,
                5 => fs::Advice::NoReuse,
                _ => return Err(P1Error::Errno(errno::INVAL)),
            };
            with_state(view, |state, view| {
                let desc = borrow(&file(state, fd as u32)?.desc);
                Ok(HostDescriptor::advise(
                    view,
                    desc,
                    offset as u64,
                    len as u64,
                    advice,
                )?)
            })
        }
    );
    sync_fn!(
        linker,
        "fd_allocate",
        |mem, view, fd: i32, _offset: i64, _len: i64| {
            with_state(view, |state, _| {
                file(state, fd as u32)?;
                // As in wasmtime: WASI 0.2 has no way to preallocate.
                Err(P1Error::Errno(errno::NOTSUP))
            })
        }
    );
    sync_fn!(linker, "fd_renumber", |mem, view, from: i32, to: i32| {
        with_state(view, |state, view| {
            let (from, to) = (from as u32, to as u32);
            if !state.fds.contains_key(&from) || !state.fds.contains_key(&to) {
                return Err(P1Error::Errno(errno::BADF));
            }
            if from == to {
                return Ok(());
            }
            let moved = state.fds.remove(&from).ok_or(P1Error::Errno(errno::BADF))?;
            if let Some(replaced) = state.fds.insert(to, moved) {
                close_entry(view, replaced)?;
            }
            Ok(())
        })
    });
    sync_fn!(
        linker,
        "fd_pread",
        |mem, view, fd: i32, iovs: i32, count: i32, offset: i64, out: i32| {
            let iovs = mem.iovecs(iovs as u32, count as u32)?;
            let len = abi::total_len(&iovs, MAX_READ_BYTES);
            let data = with_state(view, |state, view| {
                let desc = borrow(&file(state, fd as u32)?.desc);
                Ok(HostDescriptor::read(view, desc, len as u64, offset as u64)?.0)
            })?;
            let n = mem.scatter(&iovs, &data)?;
            mem.put_u32(out as u32, n as u32)
        }
    );
    sync_fn!(
        linker,
        "fd_pwrite",
        |mem, view, fd: i32, iovs: i32, count: i32, offset: i64, out: i32| {
            let data = mem.gather(iovs as u32, count as u32)?;
            let n = with_state(view, |state, view| {
                let desc = borrow(&file(state, fd as u32)?.desc);
                Ok(HostDescriptor::write(view, desc, data, offset as u64)?)
            })?;
            mem.put_u32(out as u32, n as u32)
        }
    );
    sync_fn!(
        linker,
        "fd_readdir",
        |mem, view, fd: i32, buf: i32, len: i32, cookie: i64, out: i32| {
            let entries = with_state(view, |state, view| {
                let desc = dir(state, fd as u32)?;
                read_dir(view, desc)
            })?;
            let (buf, len) = (buf as u32, len as u32);
            let mut used = 0u32;
            for (index, (name, kind, inode)) in
                entries.iter().enumerate().skip(cookie as u64 as usize)
            {
                if used >= len {
                    break;
                }
                let mut dirent = [0u8; 24];
                dirent[0..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
                dirent[8..16].copy_from_slice(&inode.to_le_bytes());
                dirent[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
                dirent[20] = *kind;
                let mut record = dirent.to_vec();
                record.extend_from_slice(name.as_bytes());
                // A record that does not fit is cut: the caller sees a full buffer and asks again
                // with a larger one, as the witx describes.
                let n = (record.len() as u32).min(len - used);
                let at = buf.checked_add(used).ok_or(P1Error::Errno(errno::FAULT))?;
                mem.write(at, &record[..n as usize])?;
                used += n;
            }
            mem.put_u32(out as u32, used)
        }
    );

    // Paths.
    sync_fn!(
        linker,
        "path_create_directory",
        |mem, view, fd: i32, path: i32, len: i32| {
            at_path(&mem, view, fd, path, len, |view, desc, path| {
                HostDescriptor::create_directory_at(view, desc, path)
            })
        }
    );
    sync_fn!(
        linker,
        "path_filestat_get",
        |mem, view, fd: i32, flags: i32, path: i32, path_len: i32, out: i32| {
            let path = mem.string(path as u32, path_len as u32)?;
            let (stat, inode) = with_state(view, |state, view| {
                let desc = dir(state, fd as u32)?;
                let follow = path_flags(flags as u32);
                let stat = HostDescriptor::stat_at(view, borrow(&desc), follow, path.clone())?;
                let inode = HostDescriptor::metadata_hash_at(view, desc, follow, path)?.lower;
                Ok((stat, inode))
            })?;
            let out = out as u32;
            put_filestat(&mut mem, out, &stat, inode)
        }
    );
    sync_fn!(
        linker,
        "path_filestat_set_times",
        |mem,
         view,
         fd: i32,
         flags: i32,
         path: i32,
         path_len: i32,
         atim: i64,
         mtim: i64,
         fst: i32| {
            let path = mem.string(path as u32, path_len as u32)?;
            let (atime, mtime) = timestamps(atim as u64, mtim as u64, fst as u16)?;
            with_state(view, |state, view| {
                let desc = dir(state, fd as u32)?;
                Ok(HostDescriptor::set_times_at(
                    view,
                    desc,
                    path_flags(flags as u32),
                    path,
                    atime,
                    mtime,
                )?)
            })
        }
    );
    sync_fn!(
        linker,
        "path_link",
        |mem,
         view,
         old_fd: i32,
         old_flags: i32,
         old_path: i32,
         old_len: i32,
         new_fd: i32,
         new_path: i32,
         new_len: i32| {
            let old_path = mem.string(old_path as u32, old_len as u32)?;
            let new_path = mem.string(new_path as u32, new_len as u32)?;
            with_state(view, |state, view| {
                let old = dir(state, old_fd as u32)?;
                let new = dir(state, new_fd as u32)?;
                Ok(HostDescriptor::link_at(
                    view,
                    old,
                    path_flags(old_flags as u32),
                    old_path,
                    new,
                    new_path,
                )?)
            })
        }
    );
    sync_fn!(
        linker,
        "path_open",
        |mem,
         view,
         fd: i32,
         dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         base: i64,
         _inheriting: i64,
         fdflags: i32,
         out: i32| {
            let path = mem.string(path as u32, path_len as u32)?;
            let (oflags, base, fdflags) = (oflags as u16, base as u64, fdflags as u16);
            let mut open_flags = OpenFlags::empty();
            if oflags & abi::OFLAGS_CREAT != 0 {
                open_flags |= OpenFlags::CREATE;
            }
            if oflags & abi::OFLAGS_DIRECTORY != 0 {
                open_flags |= OpenFlags::DIRECTORY;
            }
            if oflags & abi::OFLAGS_EXCL != 0 {
                open_flags |= OpenFlags::EXCLUSIVE;
            }
            if oflags & abi::OFLAGS_TRUNC != 0 {
                open_flags |= OpenFlags::TRUNCATE;
            }
            // The rights asked for decide the access mode, as in wasmtime.
            let mut flags = DescriptorFlags::empty();
            if base & (rights::FD_READ | rights::FD_READDIR) != 0 {
                flags |= DescriptorFlags::READ;
            }
            let write_rights = rights::FD_WRITE
                | rights::FD_ALLOCATE
                | rights::FD_FILESTAT_SET_SIZE
                | rights::FD_DATASYNC;
            if base & write_rights != 0 {
                flags |= DescriptorFlags::WRITE;
            }
            let number = with_state(view, |state, view| {
                let parent = dir(state, fd as u32)?;
                let opened = view
                    .open_descriptor(
                        &parent,
                        path_flags(dirflags as u32),
                        &path,
                        open_flags,
                        flags,
                    )
                    .map_err(|failure| match failure.os_errno {
                        Some(e) if e == libc::EMFILE => P1Error::Errno(errno::MFILE),
                        Some(e) if e == libc::ENFILE => P1Error::Errno(errno::NFILE),
                        _ => failure.code.into(),
                    })?;
                let is_dir = matches!(opened, Descriptor::Dir(_));
                let desc = view.table.push(opened)?;
                let entry = if is_dir {
                    Fd::Dir(DirFd {
                        desc,
                        preopen: None,
                    })
                } else {
                    Fd::File(FileFd {
                        desc,
                        position: 0,
                        append: fdflags & abi::FDFLAGS_APPEND != 0,
                    })
                };
                state.insert(entry)
            })?;
            mem.put_u32(out as u32, number)
        }
    );
    sync_fn!(
        linker,
        "path_readlink",
        |mem, view, fd: i32, path: i32, path_len: i32, buf: i32, buf_len: i32, out: i32| {
            let path = mem.string(path as u32, path_len as u32)?;
            let target = with_state(view, |state, view| {
                let desc = dir(state, fd as u32)?;
                Ok(HostDescriptor::readlink_at(view, desc, path)?)
            })?;
            // Truncated to the buffer, as readlink(2) does.
            let n = target.len().min(buf_len as u32 as usize);
            mem.write(buf as u32, &target.as_bytes()[..n])?;
            mem.put_u32(out as u32, n as u32)
        }
    );
    sync_fn!(
        linker,
        "path_remove_directory",
        |mem, view, fd: i32, path: i32, len: i32| {
            at_path(&mem, view, fd, path, len, |view, desc, path| {
                HostDescriptor::remove_directory_at(view, desc, path)
            })
        }
    );
    sync_fn!(
        linker,
        "path_rename",
        |mem,
         view,
         fd: i32,
         old_path: i32,
         old_len: i32,
         new_fd: i32,
         new_path: i32,
         new_len: i32| {
            let old_path = mem.string(old_path as u32, old_len as u32)?;
            let new_path = mem.string(new_path as u32, new_len as u32)?;
            with_state(view, |state, view| {
                let old = dir(state, fd as u32)?;
                let new = dir(state, new_fd as u32)?;
                Ok(HostDescriptor::rename_at(
                    view, old, old_path, new, new_path,
                )?)
            })
        }
    );
    sync_fn!(
        linker,
        "path_symlink",
        |mem, view, old_path: i32, old_len: i32, fd: i32, new_path: i32, new_len: i32| {
            let old_path = mem.string(old_path as u32, old_len as u32)?;
            let new_path = mem.string(new_path as u32, new_len as u32)?;
            with_state(view, |state, view| {
                let desc = dir(state, fd as u32)?;
                Ok(HostDescriptor::symlink_at(view, desc, old_path, new_path)?)
            })
        }
    );
    sync_fn!(
        linker,
        "path_unlink_file",
        |mem, view, fd: i32, path: i32, len: i32| {
            at_path(&mem, view, fd, path, len, |view, desc, path| {
                HostDescriptor::unlink_file_at(view, desc, path)
            })
        }
    );

    // Sockets: preview1 only has calls on preopened sockets, and weir preopens none.
    for (name, params) in [
        ("sock_accept", 3usize),
        ("sock_recv", 6),
        ("sock_send", 5),
        ("sock_shutdown", 2),
    ] {
        let ty = wasmtime::FuncType::new(
            linker.engine(),
            std::iter::repeat_n(wasmtime::ValType::I32, params),
            [wasmtime::ValType::I32],
        );
        linker.func_new(MODULE, name, ty, |_caller, _params, results| {
            results[0] = wasmtime::Val::I32(i32::from(errno::NOTSOCK));
            Ok(())
        })?;
    }

    add_waiting_functions(linker, blocking)
}

/// Every entry of a directory, `.` and `..` first, as `(name, filetype, inode)`.
fn read_dir(
    view: &mut WasiCtxView<'_>,
    desc: Resource<Descriptor>,
) -> P1Result<Vec<(String, u8, u64)>> {
    let mut entries = vec![
        (".".to_string(), filetype::DIRECTORY, 0),
        ("..".to_string(), filetype::DIRECTORY, 0),
    ];
    let stream = HostDescriptor::read_directory(view, borrow(&desc))?;
    let listed = (|| -> P1Result<()> {
        while let Some(entry) =
            HostDirectoryEntryStream::read_directory_entry(view, borrow(&stream))?
        {
            let inode = HostDescriptor::metadata_hash_at(
                view,
                borrow(&desc),
                PathFlags::empty(),
                entry.name.clone(),
            )
            .map(|hash| hash.lower)
            .unwrap_or(0);
            entries.push((entry.name, filetype_of(entry.type_), inode));
        }
        Ok(())
    })();
    HostDirectoryEntryStream::drop(view, stream)?;
    listed?;
    Ok(entries)
}

/// `fd_read`, `fd_write` and `poll_oneoff`: they may wait on stdin, stdout or a clock. With
/// `blocking`, each waits on the calling thread (engines without async support).
fn add_waiting_functions<T: WasiView + Send + 'static>(
    linker: &mut Linker<T>,
    blocking: bool,
) -> wasmtime::Result<()> {
    type Args = (i32, i32, i32, i32);
    macro_rules! waiting_fn {
        ($name:literal, $body:ident) => {
            if blocking {
                linker.func_wrap(
                    MODULE,
                    $name,
                    |mut caller: Caller<'_, T>, a: i32, b: i32, c: i32, d: i32| {
                        finish(crate::sync::block_on($body(&mut caller, (a, b, c, d))))
                    },
                )?;
            } else {
                linker.func_wrap_async(
                    MODULE,
                    $name,
                    |mut caller: Caller<'_, T>, args: Args| {
                        Box::new(async move { finish($body(&mut caller, args).await) })
                    },
                )?;
            }
        };
    }
    waiting_fn!("fd_write", fd_write);
    waiting_fn!("fd_read", fd_read);
    waiting_fn!("poll_oneoff", poll_oneoff);
    Ok(())
}

async fn fd_write<T: WasiView>(
    caller: &mut Caller<'_, T>,
    (fd, iovs, count, out): (i32, i32, i32, i32),
) -> P1Result<()> {
    let data = memory(caller)?.0.gather(iovs as u32, count as u32)?;
    let written = {
        let view = &mut caller.data_mut().wasi();
        write(view, fd as u32, data).await?
    };
    memory(caller)?.0.put_u32(out as u32, written as u32)
}

async fn fd_read<T: WasiView>(
    caller: &mut Caller<'_, T>,
    (fd, iovs, count, out): (i32, i32, i32, i32),
) -> P1Result<()> {
    let iovs = memory(caller)?.0.iovecs(iovs as u32, count as u32)?;
    let len = abi::total_len(&iovs, MAX_READ_BYTES);
    let data = {
        let view = &mut caller.data_mut().wasi();
        read(view, fd as u32, len).await?
    };
    let mut mem = memory(caller)?.0;
    let n = mem.scatter(&iovs, &data)?;
    mem.put_u32(out as u32, n as u32)
}

async fn poll_oneoff<T: WasiView>(
    caller: &mut Caller<'_, T>,
    (input, output, count, out): (i32, i32, i32, i32),
) -> P1Result<()> {
    let subscriptions = {
        let mem = memory(caller)?.0;
        parse_subscriptions(&mem, input as u32, count as u32)?
    };
    let events = {
        let view = &mut caller.data_mut().wasi();
        poll(view, &subscriptions).await?
    };
    let mut mem = memory(caller)?.0;
    for (i, event) in events.iter().enumerate() {
        let at = (output as u32)
            .checked_add(32 * i as u32)
            .ok_or(P1Error::Errno(errno::FAULT))?;
        mem.bytes_mut(at, 32)?.fill(0);
        mem.put_u64(at, event.userdata)?;
        mem.put_u16(at + 8, event.error)?;
        mem.put_u8(at + 10, event.kind)?;
    }
    mem.put_u32(out as u32, events.len() as u32)
}

/// `fd_write`: stdout/stderr through Weir's stream (waiting for permits, never flushing);
/// files at the descriptor's position (or its end, in append mode).
async fn write(view: &mut WasiCtxView<'_>, fd: u32, data: Vec<u8>) -> P1Result<usize> {
    enum Target {
        Stream(Resource<OutputStreamResource>),
        File(Resource<Descriptor>, u64),
    }
    let target = with_state(view, |state, view| match fd_entry(state, fd)? {
        Fd::Output(stream, _) => Ok(Target::Stream(borrow(stream))),
        Fd::File(file) => {
            let position = if file.append {
                HostDescriptor::stat(view, borrow(&file.desc))?.size
            } else {
                file.position
            };
            Ok(Target::File(borrow(&file.desc), position))
        }
        Fd::Dir(_) => Err(P1Error::Errno(errno::ISDIR)),
        Fd::Stdin(..) => Err(P1Error::Errno(errno::BADF)),
    })?;
    match target {
        Target::Stream(stream) => {
            let stream = view.table.get_mut(&stream)?;
            let mut data = Bytes::from(data);
            let total = data.len();
            while !data.is_empty() {
                let permit = stream.check_write()?;
                if permit == 0 {
                    stream.write_ready().await?;
                    continue;
                }
                stream.write(data.split_to(permit.min(data.len())))?;
            }
            Ok(total)
        }
        Target::File(desc, position) => {
            let n = HostDescriptor::write(view, desc, data, position)? as usize;
            with_state(view, |state, _| {
                file(state, fd)?.position = position + n as u64;
                Ok(n)
            })
        }
    }
}

/// `fd_read`: stdin waits for data (end of stream reads 0 bytes); files read at the position.
async fn read(view: &mut WasiCtxView<'_>, fd: u32, len: usize) -> P1Result<Vec<u8>> {
    enum Source {
        Stream(Resource<InputStreamResource>),
        File(Resource<Descriptor>, u64),
    }
    let source = with_state(view, |state, _| match fd_entry(state, fd)? {
        Fd::Stdin(stream, _) => Ok(Source::Stream(borrow(stream))),
        Fd::File(file) => Ok(Source::File(borrow(&file.desc), file.position)),
        Fd::Dir(_) => Err(P1Error::Errno(errno::ISDIR)),
        Fd::Output(..) => Err(P1Error::Errno(errno::BADF)),
    })?;
    match source {
        Source::Stream(stream) => {
            if len == 0 {
                return Ok(Vec::new());
            }
            let stream = view.table.get_mut(&stream)?;
            loop {
                match stream.read(len as u64) {
                    Ok(bytes) if bytes.is_empty() => stream.ready().await,
                    Ok(bytes) => return Ok(bytes.to_vec()),
                    Err(StreamError::Closed) => return Ok(Vec::new()),
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Source::File(desc, position) => {
            let (data, _end) = HostDescriptor::read(view, desc, len as u64, position)?;
            with_state(view, |state, _| {
                file(state, fd)?.position = position + data.len() as u64;
                Ok(data)
            })
        }
    }
}

struct Subscription {
    userdata: u64,
    kind: SubscriptionKind,
}

enum SubscriptionKind {
    /// A monotonic deadline, in nanoseconds.
    Clock(u64),
    Read(u32),
    Write(u32),
}

struct Event {
    userdata: u64,
    error: u16,
    kind: u8,
}

fn parse_subscriptions(mem: &Memory<'_>, input: u32, count: u32) -> P1Result<Vec<Subscription>> {
    if count == 0 {
        return Err(P1Error::Errno(errno::INVAL));
    }
    let now = clock_now(abi::CLOCK_MONOTONIC)?;
    (0..count)
        .map(|i| {
            let at = input
                .checked_add(i.checked_mul(48).ok_or(P1Error::Errno(errno::FAULT))?)
                .ok_or(P1Error::Errno(errno::FAULT))?;
            // The whole record first: the field offsets below cannot wrap then.
            mem.bytes(at, 48)?;
            let userdata = mem.u64(at)?;
            let kind = match mem.u8(at + 8)? {
                abi::EVENTTYPE_CLOCK => {
                    let id = mem.u32(at + 16)?;
                    if id != abi::CLOCK_REALTIME && id != abi::CLOCK_MONOTONIC {
                        // As wasmtime: only the two clocks with timers can be waited on.
                        return Err(P1Error::Errno(errno::INVAL));
                    }
                    let timeout = mem.u64(at + 24)?;
                    let flags = mem.u16(at + 40)?;
                    let deadline = if flags & abi::SUBCLOCKFLAGS_ABSTIME != 0 {
                        // An absolute time on the subscription's clock, as a monotonic deadline.
                        now.saturating_add(timeout.saturating_sub(clock_now(id)?))
                    } else {
                        clock_now(id)?;
                        now.saturating_add(timeout)
                    };
                    SubscriptionKind::Clock(deadline)
                }
                abi::EVENTTYPE_FD_READ => SubscriptionKind::Read(mem.u32(at + 16)?),
                abi::EVENTTYPE_FD_WRITE => SubscriptionKind::Write(mem.u32(at + 16)?),
                _ => return Err(P1Error::Errno(errno::INVAL)),
            };
            Ok(Subscription { userdata, kind })
        })
        .collect()
}

/// Waits until at least one subscription is ready; returns the ready ones as events.
async fn poll(view: &mut WasiCtxView<'_>, subscriptions: &[Subscription]) -> P1Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut stdin_waiters = Vec::new();
    let mut earliest: Option<u64> = None;
    for sub in subscriptions {
        match sub.kind {
            SubscriptionKind::Clock(deadline) => {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
            SubscriptionKind::Read(fd) | SubscriptionKind::Write(fd) => {
                let kind = if matches!(sub.kind, SubscriptionKind::Read(_)) {
                    abi::EVENTTYPE_FD_READ
                } else {
                    abi::EVENTTYPE_FD_WRITE
                };
                let stdin = with_state(view, |state, _| match state.fds.get(&fd) {
                    None => Ok(Err(errno::BADF)),
                    Some(Fd::Stdin(stream, _)) if kind == abi::EVENTTYPE_FD_READ => {
                        Ok(Ok(Some(borrow(stream))))
                    }
                    Some(_) => Ok(Ok(None)),
                })?;
                match stdin {
                    Ok(Some(stream)) => stdin_waiters.push((sub.userdata, stream)),
                    // Files, stdout and stderr are always ready.
                    Ok(None) => events.push(Event {
                        userdata: sub.userdata,
                        error: errno::SUCCESS,
                        kind,
                    }),
                    Err(code) => events.push(Event {
                        userdata: sub.userdata,
                        error: code,
                        kind,
                    }),
                }
            }
        }
    }
    if !events.is_empty() {
        return Ok(events);
    }
    // A wake-up before any deadline (the timer's granularity) waits again: preview1's
    // callers (Rust's `thread::sleep`) expect at least one event.
    while events.is_empty() {
        let sleep = async {
            match earliest {
                Some(deadline) => {
                    let now = clock_now(abi::CLOCK_MONOTONIC).unwrap_or(deadline);
                    tokio::time::sleep(Duration::from_nanos(deadline.saturating_sub(now))).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let stdin_ready = async {
            match stdin_waiters.first() {
                Some((_, stream)) => {
                    if let Ok(stream) = view.table.get_mut(stream) {
                        stream.ready().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = stdin_ready => {
                // Every stdin subscription is about the same stream.
                for (userdata, _) in &stdin_waiters {
                    events.push(Event { userdata: *userdata, error: errno::SUCCESS, kind: abi::EVENTTYPE_FD_READ });
                }
            }
            () = sleep => {
                let now = clock_now(abi::CLOCK_MONOTONIC)?;
                for sub in subscriptions {
                    if let SubscriptionKind::Clock(deadline) = sub.kind
                        && deadline <= now
                    {
                        events.push(Event { userdata: sub.userdata, error: errno::SUCCESS, kind: abi::EVENTTYPE_CLOCK });
                    }
                }
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filesystem_code_has_an_errno() {
        assert_eq!(errno_from_fs(ErrorCode::NoEntry), errno::NOENT);
        assert_eq!(errno_from_fs(ErrorCode::NotEmpty), errno::NOTEMPTY);
        assert_eq!(errno_from_fs(ErrorCode::IsDirectory), errno::ISDIR);
        assert_eq!(errno_from_fs(ErrorCode::NotPermitted), errno::PERM);
    }

    #[test]
    fn memory_accesses_out_of_bounds_are_faults_not_panics() {
        let mut bytes = vec![0u8; 16];
        let mut mem = Memory(&mut bytes);
        assert!(matches!(mem.u64(12), Err(P1Error::Errno(errno::FAULT))));
        assert!(matches!(
            mem.put_u32(u32::MAX, 1),
            Err(P1Error::Errno(errno::FAULT))
        ));
        assert!(matches!(
            mem.iovecs(8, u32::MAX),
            Err(P1Error::Errno(errno::FAULT))
        ));
        mem.put_u32(12, 7).unwrap();
        assert_eq!(mem.u32(12).unwrap(), 7);
    }
}
