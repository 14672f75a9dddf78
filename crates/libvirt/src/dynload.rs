//! libvirt loaded when the first connection opens, not when kvmtune starts.
//!
//! libvirt's client library pulls in about 55 shared libraries (GnuTLS, GLib, libssh,
//! Kerberos, ...). Linked the usual way, the dynamic loader maps and relocates all of them
//! before `main`, which is most of a command's run time for commands that never talk to
//! libvirt (`audit FILE`, `explain`, `diagnose --perf-report`): about 10 ms of CPU per
//! process (issue 19).
//!
//! The `virt` crate calls libvirt's C functions by name. The kvmtune binary defines those
//! names itself with [`lazy_bindings!`](crate::lazy_bindings): each definition looks the real
//! function up in `libvirt.so.0` (or `libvirt-qemu.so.0`) on its first call, through
//! `libloading`, and calls it. Because the binary defines every libvirt function it uses,
//! the linker (which links shared libraries `--as-needed`) records no dependency on libvirt
//! at all. A test (`crates/kvmtune/tests/startup.rs`) reads the binary's dynamic section to
//! keep it so. Other binaries of the workspace (the crates' tests) do not expand the macro
//! and link libvirt as usual; [`ensure_loaded`] is harmless there.
//!
//! [`crate::Libvirt::open`] calls [`ensure_loaded`] first, so a host without libvirt gets
//! one clear error ("cannot load libvirt's client library libvirt.so.0: ...") when a
//! command needs a connection, and every other command works.

use std::sync::OnceLock;

use libloading::Library;

use crate::LibvirtError;

/// Which of libvirt's two client libraries a function lives in.
#[derive(Debug, Clone, Copy)]
pub enum Lib {
    /// `libvirt.so.0`: every `vir*` function but the QEMU-specific ones.
    Libvirt,
    /// `libvirt-qemu.so.0`: `virDomainQemu*`.
    Qemu,
}

impl Lib {
    fn file(self) -> &'static str {
        match self {
            Lib::Libvirt => "libvirt.so.0",
            Lib::Qemu => "libvirt-qemu.so.0",
        }
    }

    fn cell(self) -> &'static OnceLock<Result<Library, String>> {
        static LIBVIRT: OnceLock<Result<Library, String>> = OnceLock::new();
        static QEMU: OnceLock<Result<Library, String>> = OnceLock::new();
        match self {
            Lib::Libvirt => &LIBVIRT,
            Lib::Qemu => &QEMU,
        }
    }

    fn load(self) -> Result<&'static Library, String> {
        self.cell()
            .get_or_init(|| {
                // SAFETY: loading libvirt runs its initialisers (GLib, GnuTLS, libvirt's
                // own), which are written to be loaded into any process; kvmtune has not
                // called any of its functions before this point.
                unsafe { Library::new(self.file()) }.map_err(|e| {
                    format!(
                        "cannot load libvirt's client library {}: {e} (install libvirt, e.g. Debian's libvirt0)",
                        self.file()
                    )
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Load `libvirt.so.0` now, once per process: a clear error when it is missing.
pub fn ensure_loaded() -> Result<(), LibvirtError> {
    Lib::Libvirt
        .load()
        .map(|_| ())
        .map_err(|message| LibvirtError {
            op: "load".into(),
            message,
        })
}

/// The address of `name` (NUL-terminated) in `lib`, loading `lib` on first use; `None` when
/// the library or the symbol is missing.
///
/// # Safety
/// `F` must be an `unsafe extern "C" fn` type with the C signature libvirt's header gives
/// `name` (the `virt` crate's `virt_sys` declarations).
#[doc(hidden)]
pub unsafe fn symbol<F: Copy>(lib: Lib, name: &[u8]) -> Option<F> {
    let library = lib.load().ok()?;
    // SAFETY: the caller promises `F` matches the symbol's C signature; the library is
    // kept loaded for the life of the process (a `static`), so the pointer never dangles.
    unsafe { library.get::<F>(name) }.ok().map(|s| *s)
}

/// Defines, in the crate that expands it (the kvmtune binary), every libvirt C function
/// the `virt` crate calls for kvmtune, each loading the real one on its first call. See the
/// module documentation. A function kvmtune starts to use must be added here, or the
/// binary links libvirt again (the start-up test says which).
#[macro_export]
macro_rules! lazy_bindings {
    () => {
        $crate::__lazy_shims! {
            Libvirt fn virConnectClose(conn: virConnectPtr) -> c_int = -1;
            Libvirt fn virConnectGetAllDomainStats(conn: virConnectPtr, stats: c_uint, ret_stats: *mut *mut virDomainStatsRecordPtr, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainListGetStats(doms: *mut virDomainPtr, stats: c_uint, ret_stats: *mut *mut virDomainStatsRecordPtr, flags: c_uint) -> c_int = -1;
            Libvirt fn virConnectGetCapabilities(conn: virConnectPtr) -> *mut c_char = std::ptr::null_mut();
            Libvirt fn virConnectGetDomainCapabilities(conn: virConnectPtr, emulatorbin: *const c_char, arch: *const c_char, machine: *const c_char, virttype: *const c_char, flags: c_uint) -> *mut c_char = std::ptr::null_mut();
            Libvirt fn virConnectGetHostname(conn: virConnectPtr) -> *mut c_char = std::ptr::null_mut();
            Libvirt fn virConnectListAllDomains(conn: virConnectPtr, domains: *mut *mut virDomainPtr, flags: c_uint) -> c_int = -1;
            Libvirt fn virConnectOpen(name: *const c_char) -> virConnectPtr = std::ptr::null_mut();
            Libvirt fn virConnectOpenReadOnly(name: *const c_char) -> virConnectPtr = std::ptr::null_mut();
            Libvirt fn virDomainDefineXMLFlags(conn: virConnectPtr, xml: *const c_char, flags: c_uint) -> virDomainPtr = std::ptr::null_mut();
            Libvirt fn virDomainFree(domain: virDomainPtr) -> c_int = -1;
            Libvirt fn virDomainGetID(domain: virDomainPtr) -> c_uint = c_uint::MAX;
            Libvirt fn virDomainGetName(domain: virDomainPtr) -> *const c_char = std::ptr::null();
            Libvirt fn virDomainGetState(domain: virDomainPtr, state: *mut c_int, reason: *mut c_int, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainGetUUIDString(domain: virDomainPtr, buf: *mut c_char) -> c_int = -1;
            Libvirt fn virDomainGetXMLDesc(domain: virDomainPtr, flags: c_uint) -> *mut c_char = std::ptr::null_mut();
            Libvirt fn virDomainIsActive(dom: virDomainPtr) -> c_int = -1;
            Libvirt fn virDomainLookupByName(conn: virConnectPtr, name: *const c_char) -> virDomainPtr = std::ptr::null_mut();
            Libvirt fn virDomainPinEmulator(domain: virDomainPtr, cpumap: *mut c_uchar, maplen: c_int, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainPinVcpuFlags(domain: virDomainPtr, vcpu: c_uint, cpumap: *mut c_uchar, maplen: c_int, flags: c_uint) -> c_int = -1;
            Qemu fn virDomainQemuMonitorCommand(domain: virDomainPtr, cmd: *const c_char, result: *mut *mut c_char, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainSetMemoryFlags(domain: virDomainPtr, memory: c_ulong, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainSetMemoryParameters(domain: virDomainPtr, params: virTypedParameterPtr, nparams: c_int, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainSetNumaParameters(domain: virDomainPtr, params: virTypedParameterPtr, nparams: c_int, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainSetVcpusFlags(domain: virDomainPtr, nvcpus: c_uint, flags: c_uint) -> c_int = -1;
            Libvirt fn virDomainStatsRecordListFree(stats: *mut virDomainStatsRecordPtr) -> () = ();
            Libvirt fn virGetLastError() -> virErrorPtr = std::ptr::null_mut();
            Libvirt fn virNodeAllocPages(conn: virConnectPtr, npages: c_uint, page_sizes: *mut c_uint, page_counts: *mut c_ulonglong, start_cell: c_int, cell_count: c_uint, flags: c_uint) -> c_int = -1;
            Libvirt fn virNodeGetCellsFreeMemory(conn: virConnectPtr, free_mems: *mut c_ulonglong, start_cell: c_int, max_cells: c_int) -> c_int = -1;
            Libvirt fn virNodeGetFreeMemory(conn: virConnectPtr) -> c_ulonglong = 0;
            Libvirt fn virNodeGetFreePages(conn: virConnectPtr, npages: c_uint, pages: *mut c_uint, startcell: c_int, cellcount: c_uint, counts: *mut c_ulonglong, flags: c_uint) -> c_int = -1;
            Libvirt fn virNodeGetInfo(conn: virConnectPtr, info: virNodeInfoPtr) -> c_int = -1;
            Libvirt fn virNodeGetMemoryParameters(conn: virConnectPtr, params: virTypedParameterPtr, nparams: *mut c_int, flags: c_uint) -> c_int = -1;
            Libvirt fn virNodeSetMemoryParameters(conn: virConnectPtr, params: virTypedParameterPtr, nparams: c_int, flags: c_uint) -> c_int = -1;
            Libvirt fn virSetErrorFunc(user_data: *mut c_void, handler: virErrorFunc) -> () = ();
            Libvirt fn virTypedParamsClear(params: virTypedParameterPtr, nparams: c_int) -> () = ();
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __lazy_shims {
    ($( $lib:ident fn $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty = $fail:expr ; )*) => {
        #[allow(non_snake_case, clippy::missing_safety_doc, unused_imports)]
        mod lazy_libvirt {
            use std::os::raw::{c_char, c_int, c_uchar, c_uint, c_ulong, c_ulonglong, c_void};
            use std::sync::OnceLock;
            use $crate::dynload::__sys::*;
            $(
                // SAFETY: `no_mangle` gives this function libvirt's own name, which nothing
                // else in the binary defines (libvirt itself is not linked: the module
                // documentation of `kvmtune_libvirt::dynload` says why); its signature is
                // libvirt's, as declared by `virt_sys`.
                #[unsafe(no_mangle)]
                pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
                    type F = unsafe extern "C" fn($($t),*) -> $r;
                    static REAL: OnceLock<Option<F>> = OnceLock::new();
                    let real = REAL.get_or_init(|| {
                        // SAFETY: `F` is libvirt's C signature of this very symbol.
                        unsafe {
                            $crate::dynload::symbol::<F>(
                                $crate::dynload::Lib::$lib,
                                concat!(stringify!($name), "\0").as_bytes(),
                            )
                        }
                    });
                    match real {
                        // SAFETY: the caller (the `virt` crate) upholds libvirt's contract
                        // for this function; the pointer is the real libvirt function.
                        Some(f) => unsafe { f($($a),*) },
                        // libvirt could not be loaded: `Libvirt::open` refuses before any
                        // other call, so this is only reached by a direct call; fail as the
                        // C function fails.
                        None => $fail,
                    }
                }
            )*
        }
    };
}

#[doc(hidden)]
pub use virt::sys as __sys;
