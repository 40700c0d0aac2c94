//! Borrowing the bytes of any object that supports the buffer protocol
//! (`bytes`, `bytearray`, `memoryview`, `array.array`, numpy arrays,
//! `mmap`).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// CPython's `Py_buffer`, unchanged since Python 3.3 (`Include/pybuffer.h`).
#[repr(C)]
struct PyBufferView {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

/// `PyBUF_SIMPLE`: one contiguous run of bytes, any item format.
const PYBUF_SIMPLE: c_int = 0;
/// `PyBUF_WRITABLE`: as `PyBUF_SIMPLE`, and writable.
const PYBUF_WRITABLE: c_int = 0x0001;
/// `PyBUF_READ`, for `PyMemoryView_FromMemory`: a read-only view.
pub(crate) const PYBUF_READ: c_int = 0x100;

// The interpreter that loads the module provides these (every CPython 3).
extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBufferView, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBufferView);
}

/// A contiguous buffer exported by a Python object, released on drop.
///
/// While it is held the exporter keeps the memory where it is: a
/// `bytearray` refuses to resize, an `mmap` to close. `Py_buffer` and
/// `PyObject_GetBuffer` are in the stable ABI from Python 3.11; the
/// structure and the calls have been the same since Python 3.3 and every
/// CPython 3 exports them, which is what lets this abi3 module declare
/// them itself and use them on 3.9 and 3.10 too (PyO3 declares them for
/// abi3 builds only from 3.11).
pub(crate) struct Buffer {
    // Boxed: some exporters may point into the view itself, so it never
    // moves between the export and its release.
    view: Box<PyBufferView>,
}

impl Buffer {
    /// Borrows `obj`'s bytes, read-only or writable.
    pub(crate) fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<Buffer> {
        let mut view = Box::new(PyBufferView {
            buf: ptr::null_mut(),
            obj: ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: ptr::null_mut(),
            shape: ptr::null_mut(),
            strides: ptr::null_mut(),
            suboffsets: ptr::null_mut(),
            internal: ptr::null_mut(),
        });
        // PyBUF_SIMPLE asks for one contiguous run of bytes, whatever the
        // item format; exporters that cannot give that (strided views)
        // raise BufferError.
        let flags: c_int = if writable {
            PYBUF_WRITABLE
        } else {
            PYBUF_SIMPLE
        };
        // SAFETY: `obj` is a live object (we hold the GIL and a reference);
        // `view` is a valid, writable Py_buffer that stays where it is.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        let b = Buffer { view };
        if b.view.len < 0 || (b.view.buf.is_null() && b.view.len > 0) {
            return Err(PyBufferError::new_err(
                "the object exported an invalid buffer (negative length or no memory)",
            ));
        }
        Ok(b)
    }

    /// The buffer's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.view.len as usize
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.len() == 0 {
            return &[];
        }
        // SAFETY: the exporter guarantees `len` readable bytes at `buf`
        // until the buffer is released, which is after this borrow ends.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.len()) }
    }

    /// The bytes, writable (only for a buffer got with `writable`).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        debug_assert_eq!(self.view.readonly, 0);
        if self.len() == 0 {
            return &mut [];
        }
        // SAFETY: a writable export guarantees `len` writable bytes at
        // `buf` until it is released; `&mut self` makes this the only
        // slice made from it.
        unsafe { std::slice::from_raw_parts_mut(self.view.buf.cast::<u8>(), self.len()) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // Buffers are only made and dropped with the GIL held (they never
        // enter `Python::detach`, which would need them to be `Send`).
        // SAFETY: the view was filled by a successful PyObject_GetBuffer
        // and is released exactly once.
        unsafe { PyBuffer_Release(&mut *self.view) };
    }
}

/// A message to send: the bytes of a `bytes` object directly, or of any
/// other buffer.
pub(crate) enum Message<'a, 'py> {
    Bytes(&'a Bound<'py, PyBytes>),
    Buffer(Buffer),
}

impl<'a, 'py> Message<'a, 'py> {
    pub(crate) fn get(obj: &'a Bound<'py, PyAny>) -> PyResult<Message<'a, 'py>> {
        match obj.cast::<PyBytes>() {
            Ok(b) => Ok(Message::Bytes(b)),
            Err(_) => Buffer::get(obj, false).map(Message::Buffer),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Message::Bytes(b) => b.as_bytes(),
            Message::Buffer(b) => b.as_slice(),
        }
    }
}

/// A new `bytes` object holding a copy of `src`, copied with the GIL
/// released when it is large.
pub(crate) fn new_bytes<'py>(py: Python<'py>, src: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if src.len() < super::wait::DETACH_COPY {
        return Ok(PyBytes::new(py, src));
    }
    // SAFETY: a null source asks CPython for an uninitialised bytes object
    // of `len` bytes, which we own and fill before anyone else sees it.
    let obj = unsafe { ffi::PyBytes_FromStringAndSize(ptr::null(), src.len() as ffi::Py_ssize_t) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `obj` is a new, owned reference to a bytes object.
    let bytes = unsafe { Bound::from_owned_ptr(py, obj) }.cast_into::<PyBytes>()?;
    // SAFETY: PyBytes_AsString of a bytes object returns its `len` bytes of
    // storage; nobody else holds the object yet, so writing is fine.
    let dst = unsafe {
        std::slice::from_raw_parts_mut(ffi::PyBytes_AsString(obj).cast::<u8>(), src.len())
    };
    py.detach(|| dst.copy_from_slice(src));
    Ok(bytes)
}
