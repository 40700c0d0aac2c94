//! The handles' slot and callback states, through the C entry points, on
//! in-process rings (these also run under Miri: the borrowed and reserved
//! slots are self-referential, see `shmpipe_consumer::slot`).

use std::ffi::{c_void, CStr};
use std::ptr;

use crate::*;

struct Pair {
    ring: *mut shmpipe_ring,
    tx: *mut shmpipe_producer,
    rx: *mut shmpipe_consumer,
}

fn pair(slots: u64) -> Pair {
    let mut opts = shmpipe_options_default();
    opts.slots = slots;
    opts.max_message = 32;
    let mut p = Pair {
        ring: ptr::null_mut(),
        tx: ptr::null_mut(),
        rx: ptr::null_mut(),
    };
    // SAFETY: valid pointers to locals; the handles are closed in `close`.
    unsafe {
        assert_eq!(
            shmpipe_ring_create_in_process(&opts, &mut p.ring),
            SHMPIPE_OK
        );
        assert_eq!(shmpipe_ring_producer(p.ring, &mut p.tx), SHMPIPE_OK);
        assert_eq!(shmpipe_ring_consumer(p.ring, &mut p.rx), SHMPIPE_OK);
    }
    p
}

fn close(p: Pair) {
    // SAFETY: live handles from `pair`, each closed once.
    unsafe {
        shmpipe_producer_close(p.tx);
        shmpipe_consumer_close(p.rx);
        shmpipe_ring_close(p.ring);
    }
}

fn last() -> String {
    // SAFETY: never NULL, valid until the next failing call on this thread.
    unsafe { CStr::from_ptr(shmpipe_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn reserve_commit_and_borrow_release() {
    let p = pair(4);
    let mut buf: *mut c_void = ptr::null_mut();
    let mut cap = 0usize;
    let mut msg: *const c_void = ptr::null();
    let mut len = 0usize;
    // SAFETY: live handles; the slot pointers are used only while their
    // slot is reserved or borrowed.
    unsafe {
        assert_eq!(
            shmpipe_producer_reserve(p.tx, &mut buf, &mut cap, 0),
            SHMPIPE_OK
        );
        assert_eq!(cap, shmpipe_producer_max_message(p.tx));
        ptr::copy_nonoverlapping(b"abc".as_ptr(), buf.cast::<u8>(), 3);
        assert_eq!(
            shmpipe_producer_send(p.tx, b"x".as_ptr().cast(), 1, 0),
            SHMPIPE_BUSY
        );
        assert!(last().contains("commit or abort"), "{}", last());
        assert_eq!(shmpipe_producer_commit(p.tx, cap + 1), SHMPIPE_TOO_LARGE);
        assert_eq!(shmpipe_producer_commit(p.tx, 3), SHMPIPE_OK);
        assert_eq!(shmpipe_producer_commit(p.tx, 3), SHMPIPE_INVALID_ARGUMENT);

        assert_eq!(
            shmpipe_consumer_borrow(p.rx, &mut msg, &mut len, 0),
            SHMPIPE_OK
        );
        assert_eq!(std::slice::from_raw_parts(msg.cast::<u8>(), len), b"abc");
        let mut out = [0u8; 8];
        assert_eq!(
            shmpipe_consumer_recv(p.rx, out.as_mut_ptr().cast(), 8, &mut len, 0),
            SHMPIPE_BUSY
        );
        assert_eq!(shmpipe_consumer_release(p.rx), SHMPIPE_OK);
        assert_eq!(shmpipe_consumer_release(p.rx), SHMPIPE_INVALID_ARGUMENT);

        // Closing with a slot out gives it back first.
        assert_eq!(
            shmpipe_producer_reserve(p.tx, &mut buf, &mut cap, 0),
            SHMPIPE_OK
        );
        assert_eq!(
            shmpipe_producer_send(p.tx, b"x".as_ptr().cast(), 1, 0),
            SHMPIPE_BUSY
        );
        assert_eq!(shmpipe_producer_abort(p.tx), SHMPIPE_OK);
        assert_eq!(
            shmpipe_producer_send(p.tx, b"y".as_ptr().cast(), 1, 0),
            SHMPIPE_OK
        );
        assert_eq!(
            shmpipe_consumer_borrow(p.rx, &mut msg, &mut len, 0),
            SHMPIPE_OK
        );
    }
    close(p);
}

unsafe extern "C" fn reenter(ctx: *mut c_void, _msg: *const c_void, _len: usize) {
    let state = ctx.cast::<(*mut shmpipe_consumer, i32)>();
    // SAFETY: `ctx` is the tuple in the test below, alive during the call.
    unsafe {
        let mut out = [0u8; 8];
        let mut len = 0;
        (*state).1 = shmpipe_consumer_recv((*state).0, out.as_mut_ptr().cast(), 8, &mut len, 0);
        shmpipe_consumer_close((*state).0); // ignored: inside the callback
    }
}

unsafe extern "C" fn fill(_ctx: *mut c_void, index: usize, slot: *mut c_void, cap: usize) -> usize {
    assert!(cap >= 1);
    // SAFETY: `slot` is writable for `cap` bytes during the call.
    unsafe { slot.cast::<u8>().write(index as u8) };
    1
}

#[test]
fn batches_and_reentry() {
    let p = pair(8);
    let mut sent = 0;
    let mut got = 0;
    let mut state = (p.rx, 0);
    // SAFETY: live handles; the callbacks get valid contexts.
    unsafe {
        assert_eq!(
            shmpipe_producer_fill_batch(p.tx, 20, Some(fill), ptr::null_mut(), &mut sent, 0),
            SHMPIPE_OK
        );
        assert_eq!(sent, 8);
        assert_eq!(
            shmpipe_consumer_recv_batch(
                p.rx,
                3,
                Some(reenter),
                ptr::addr_of_mut!(state).cast(),
                &mut got,
                0
            ),
            SHMPIPE_OK
        );
        assert_eq!((got, state.1), (3, SHMPIPE_BUSY));
        let msgs = [shmpipe_iovec {
            data: b"a".as_ptr().cast(),
            len: 1,
        }; 4];
        assert_eq!(
            shmpipe_producer_send_batch(p.tx, msgs.as_ptr(), 4, &mut sent, 0),
            SHMPIPE_OK
        );
        assert_eq!(sent, 3);
    }
    close(p);
}

#[test]
fn bad_options_are_statuses() {
    let mut opts = shmpipe_options_default();
    let mut ring = ptr::null_mut();
    opts.slots = 3;
    // SAFETY: valid pointers to locals.
    unsafe {
        assert_eq!(
            shmpipe_ring_create_in_process(&opts, &mut ring),
            SHMPIPE_INVALID_ARGUMENT
        );
        assert!(ring.is_null());
        opts = shmpipe_options_default();
        opts.huge_pages = 9;
        assert_eq!(
            shmpipe_ring_create_in_process(&opts, &mut ring),
            SHMPIPE_INVALID_ARGUMENT
        );
        assert!(last().contains("huge_pages"));
        assert_eq!(
            shmpipe_ring_create_in_process(ptr::null(), ptr::null_mut()),
            SHMPIPE_INVALID_ARGUMENT
        );
    }
}

#[test]
fn reserve_len_spans_slots_and_keeps_the_handle_busy() {
    let p = pair(8);
    let mut buf: *mut c_void = ptr::null_mut();
    let mut msg: *const c_void = ptr::null();
    let mut len = 0usize;
    // SAFETY: live handles; the room is written only while reserved and
    // the message read only while borrowed.
    unsafe {
        let one = shmpipe_producer_max_message(p.tx);
        let limit = shmpipe_producer_message_limit(p.tx);
        assert!(limit > 3 * one, "{limit} {one}");
        let n = 3 * one;
        assert_eq!(
            shmpipe_producer_reserve_len(p.tx, limit + 1, &mut buf, 0),
            SHMPIPE_TOO_LARGE
        );
        assert!(buf.is_null());
        assert_eq!(
            shmpipe_producer_reserve_len(p.tx, n, &mut buf, 0),
            SHMPIPE_OK
        );
        ptr::write_bytes(buf.cast::<u8>(), 0x5a, n);
        assert_eq!(
            shmpipe_producer_reserve_len(p.tx, 1, &mut buf, 0),
            SHMPIPE_BUSY
        );
        assert_eq!(shmpipe_producer_commit(p.tx, n + 1), SHMPIPE_TOO_LARGE);
        assert_eq!(shmpipe_producer_commit(p.tx, n), SHMPIPE_OK);
        assert_eq!(
            shmpipe_consumer_borrow(p.rx, &mut msg, &mut len, 0),
            SHMPIPE_OK
        );
        assert_eq!(len, n);
        let got = std::slice::from_raw_parts(msg.cast::<u8>(), len);
        assert!(got.iter().all(|&b| b == 0x5a));
        assert_eq!(
            msg as usize % shmpipe_consumer_payload_align(p.rx),
            0,
            "payload alignment"
        );
        assert_eq!(shmpipe_consumer_release(p.rx), SHMPIPE_OK);
    }
    close(p);
}
