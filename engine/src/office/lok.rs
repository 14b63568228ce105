//! A minimal binding of LibreOfficeKit's C interface: load the library, start it once with a
//! profile of our own, load a document, save it as PDF, destroy it. Written from the layout of
//! `LibreOfficeKit.h` (a struct whose first member points at a table of function pointers, the
//! table's first member its size); only the entries we call are named, and the table's size is
//! checked before any is used, so an older library fails cleanly instead of jumping into nothing.
//!
//! This is one of the crate's two `unsafe` places (the other is `sandbox::confine`). Everything
//! here runs in the office worker process, on its one thread, under its caps.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};

/// `LibreOfficeKit`: a pointer to its function table.
#[repr(C)]
struct Office {
    class: *const OfficeClass,
}

/// The first entries of `LibreOfficeKitClass`, in header order.
#[repr(C)]
struct OfficeClass {
    size: usize,
    _destroy: unsafe extern "C" fn(*mut Office),
    document_load: unsafe extern "C" fn(*mut Office, *const c_char) -> *mut Document,
    get_error: unsafe extern "C" fn(*mut Office) -> *mut c_char,
    _document_load_with_options: unsafe extern "C" fn(*mut Office, *const c_char, *const c_char) -> *mut Document,
    free_error: unsafe extern "C" fn(*mut c_char),
}

/// `LibreOfficeKitDocument`: a pointer to its function table.
#[repr(C)]
struct Document {
    class: *const DocumentClass,
}

/// The first entries of `LibreOfficeKitDocumentClass`.
#[repr(C)]
struct DocumentClass {
    size: usize,
    destroy: unsafe extern "C" fn(*mut Document),
    save_as: unsafe extern "C" fn(*mut Document, *const c_char, *const c_char, *const c_char) -> c_int,
}

/// `libreofficekit_hook_2(install_path, user_profile_url)`: the library's entry point.
type Hook2 = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut Office;

/// A started LibreOfficeKit. Not `Send`: LibreOffice wants every call from the thread that started it.
pub(crate) struct Kit {
    office: *mut Office,
}

/// Why the library could not be started.
#[derive(Debug)]
pub(crate) enum StartError {
    /// No LibreOffice library in the program directory: LibreOffice is not installed.
    Missing(String),
    /// The library is there but would not start.
    Failed(String),
}

impl Kit {
    /// Loads the LibreOffice library from `program_dir` and starts it with the user profile at
    /// `profile_url` (a `file://` URL). Once per process: LibreOffice cannot be started twice.
    pub(crate) fn start(program_dir: &str, profile_url: &str) -> Result<Kit, StartError> {
        // The merged library on distributions that build one (Debian does), else the classic one.
        let candidates = ["libmergedlo.so", "libsofficeapp.so"];
        let mut handle = std::ptr::null_mut();
        for name in candidates {
            let path = format!("{program_dir}/{name}");
            if !std::path::Path::new(&path).is_file() {
                continue;
            }
            let path = cstring(&path).map_err(StartError::Failed)?;
            // SAFETY: dlopen with a valid NUL-terminated path; the library's constructors run here,
            // which is what loading LibreOffice means. RTLD_GLOBAL as LibreOffice's own launcher
            // does, so its components find each other's symbols.
            handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                return Err(StartError::Failed(format!("cannot load {name}: {}", dl_error())));
            }
            break;
        }
        if handle.is_null() {
            return Err(StartError::Missing(format!("no {} in {program_dir}", candidates.join(" or "))));
        }
        // SAFETY: a valid handle and a NUL-terminated symbol name.
        let sym = unsafe { libc::dlsym(handle, c"libreofficekit_hook_2".as_ptr()) };
        if sym.is_null() {
            return Err(StartError::Failed("the LibreOffice library has no libreofficekit_hook_2".into()));
        }
        // SAFETY: the symbol is the documented entry point with this signature.
        let hook: Hook2 = unsafe { std::mem::transmute::<*mut c_void, Hook2>(sym) };
        let (dir, profile) =
            (cstring(program_dir).map_err(StartError::Failed)?, cstring(profile_url).map_err(StartError::Failed)?);
        // SAFETY: two valid C strings that outlive the call (LibreOffice copies them).
        let office = unsafe { hook(dir.as_ptr(), profile.as_ptr()) };
        if office.is_null() {
            return Err(StartError::Failed("LibreOfficeKit did not start".into()));
        }
        // SAFETY: a non-null LibreOfficeKit points at its class table.
        let size = unsafe { (*(*office).class).size };
        if size < std::mem::size_of::<OfficeClass>() {
            return Err(StartError::Failed(format!("LibreOfficeKit's function table is too small ({size} bytes)")));
        }
        Ok(Kit { office })
    }

    /// Loads the document at `url`, saves it as PDF at `pdf_url` with the PDF export `options`
    /// (LibreOffice's JSON form), and closes it.
    pub(crate) fn to_pdf(&self, url: &str, pdf_url: &str, options: &str) -> Result<(), KitError> {
        let cstr = |s| cstring(s).map_err(KitError::Save);
        let (url, pdf_url, options) = (cstr(url)?, cstr(pdf_url)?, cstr(options)?);
        // SAFETY: `office` was checked in `start` and lives as long as `self`; the table holds the
        // entries declared above (size checked); the strings are valid for the call.
        let doc = unsafe { ((*(*self.office).class).document_load)(self.office, url.as_ptr()) };
        if doc.is_null() {
            // LibreOffice's own message here is an API's ("loadComponentFromURL returned an empty
            // reference"), which says nothing to staff.
            return Err(KitError::Open);
        }
        let doc = LoadedDocument(doc);
        // SAFETY: a non-null document points at its class table.
        let size = unsafe { (*(*doc.0).class).size };
        if size < std::mem::size_of::<DocumentClass>() {
            return Err(KitError::Save("LibreOfficeKit's document table is too small".into()));
        }
        // SAFETY: as above, for the document's table; LibreOffice copies the strings.
        let saved = unsafe { ((*(*doc.0).class).save_as)(doc.0, pdf_url.as_ptr(), c"pdf".as_ptr(), options.as_ptr()) };
        if saved == 0 {
            return Err(KitError::Save(self.error().unwrap_or_else(|| "it could not be saved as PDF".into())));
        }
        Ok(())
    }

    /// LibreOffice's last error message, if it left one.
    fn error(&self) -> Option<String> {
        // SAFETY: `get_error` returns NULL or a string we own and must give back with `free_error`.
        unsafe {
            let class = &*(*self.office).class;
            let raw = (class.get_error)(self.office);
            if raw.is_null() {
                return None;
            }
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (class.free_error)(raw);
            Some(text).filter(|t| !t.trim().is_empty())
        }
    }
}

/// Why a document did not become a PDF.
#[derive(Debug)]
pub(crate) enum KitError {
    /// LibreOffice could not open it (damaged, encrypted, or not what its content first suggested).
    Open,
    /// It opened but could not be saved as PDF.
    Save(String),
}

/// Restores the default action of SIGXCPU, which LibreOffice's start installs a handler for (it
/// then aborts): the parent must see the CPU limit as the reason a worker died.
pub(crate) fn default_cpu_limit_signal() {
    // SAFETY: setting a standard signal's disposition to SIG_DFL installs no handler code.
    unsafe {
        libc::signal(libc::SIGXCPU, libc::SIG_DFL);
    }
}

/// A loaded document, destroyed when dropped (also on the error path).
struct LoadedDocument(*mut Document);

impl Drop for LoadedDocument {
    fn drop(&mut self) {
        // SAFETY: the document came from `document_load`, is destroyed once, and is not used after.
        unsafe { ((*(*self.0).class).destroy)(self.0) }
    }
}

// Kit is deliberately not destroyed on drop: LibreOffice's shutdown can take seconds and the worker
// process ends right after; the kernel reclaims everything with the process.

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| "a path holds a NUL byte".to_owned())
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl* call.
    let raw = unsafe { libc::dlerror() };
    if raw.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated, read before any other dl* call.
        unsafe { CStr::from_ptr(raw) }.to_string_lossy().into_owned()
    }
}

/// Points the process's standard output at standard error and returns a private copy of the
/// original: LibreOffice prints to stdout, and stdout is our answer pipe.
pub(crate) fn take_stdout() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup and dup2 on the process's own standard descriptors; the duplicate is owned by the
    // File returned and by nothing else.
    unsafe {
        let copy = libc::dup(1);
        if copy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::fs::File::from_raw_fd(copy))
    }
}
