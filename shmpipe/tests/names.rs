//! Naming and lifecycle: create, open, remove; symlinks; modes; the file
//! and memfd backends.

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use shmpipe::{Backend, Error, Ring, RingBuilder, Side};

fn shm_path(addr: &str) -> String {
    format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap())
}

#[test]
fn create_refuses_an_existing_name() {
    let addr = unique("exists");
    let _c = Cleanup(addr.clone());
    let _ring = RingBuilder::new().slots(4).create(&addr).unwrap();
    match RingBuilder::new().slots(8).create(&addr) {
        Err(e @ Error::AlreadyExists { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&addr), "{msg}");
            assert!(msg.contains("shmpipe rm"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // The original is untouched.
    assert_eq!(Ring::open(&addr).unwrap().info().slots, 4);
}

#[test]
fn open_missing_and_remove() {
    let addr = unique("missing");
    assert!(matches!(Ring::open(&addr), Err(Error::NotFound { .. })));
    let ring = RingBuilder::new().create(&addr).unwrap();
    assert!(std::path::Path::new(&shm_path(&addr)).exists());
    ring.unlink().unwrap();
    assert!(!std::path::Path::new(&shm_path(&addr)).exists());
    assert!(matches!(Ring::open(&addr), Err(Error::NotFound { .. })));
    assert!(matches!(
        Ring::remove(&addr, false),
        Err(Error::NotFound { .. })
    ));
    // The mapping outlives the name.
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"still works").unwrap();
}

#[test]
fn remove_refuses_a_live_ring_unless_forced() {
    let addr = unique("inuse");
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new().create(&addr).unwrap();
    let tx = ring.producer().unwrap();
    match Ring::remove(&addr, false) {
        Err(
            e @ Error::InUse {
                side: Side::Producer,
                ..
            },
        ) => assert!(e.to_string().contains("--force")),
        other => panic!("{other:?}"),
    }
    drop(tx);
    Ring::remove(&addr, false).unwrap();
    let ring2 = RingBuilder::new().create(&addr).unwrap();
    let _rx = ring2.consumer().unwrap();
    Ring::remove(&addr, true).unwrap();
}

#[test]
fn remove_refuses_foreign_files() {
    let addr = unique("foreign");
    let path = shm_path(&addr);
    std::fs::write(&path, vec![0xAB; 8192]).unwrap();
    let _c = Cleanup(addr.clone());
    assert!(matches!(
        Ring::remove(&addr, false),
        Err(Error::BadMagic { .. })
    ));
    assert!(std::path::Path::new(&path).exists());
}

#[test]
fn unlink_on_drop_spares_a_recreated_ring() {
    let addr = unique("ondrop");
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new()
        .unlink_on_drop(true)
        .create(&addr)
        .unwrap();
    let tx = ring.producer().unwrap();
    drop(ring);
    assert!(
        std::path::Path::new(&shm_path(&addr)).exists(),
        "handle alive"
    );
    drop(tx);
    assert!(!std::path::Path::new(&shm_path(&addr)).exists());

    let ring = RingBuilder::new()
        .unlink_on_drop(true)
        .create(&addr)
        .unwrap();
    ring.unlink().unwrap();
    let _other = RingBuilder::new().create(&addr).unwrap();
    drop(ring);
    assert!(
        std::path::Path::new(&shm_path(&addr)).exists(),
        "someone else's ring under the same name was removed"
    );
}

#[test]
fn shm_symlinks_are_never_followed() {
    let addr = unique("link");
    let target = std::env::temp_dir().join(format!("shmpipe-link-target-{}", std::process::id()));
    std::fs::write(&target, vec![0u8; 8192]).unwrap();
    std::os::unix::fs::symlink(&target, shm_path(&addr)).unwrap();
    let _c = Cleanup(addr.clone());
    assert!(matches!(Ring::open(&addr), Err(Error::Symlink { .. })));
    assert!(matches!(
        RingBuilder::new().create(&addr),
        Err(Error::AlreadyExists { .. })
    ));
    // The target was not touched.
    assert_eq!(std::fs::read(&target).unwrap(), vec![0u8; 8192]);
    std::fs::remove_file(&target).unwrap();
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    let addr = unique("mode");
    let _c = Cleanup(addr.clone());
    let _r = RingBuilder::new().create(&addr).unwrap();
    let mode = std::fs::metadata(shm_path(&addr))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let addr2 = unique("mode");
    let _c2 = Cleanup(addr2.clone());
    let _r2 = RingBuilder::new().mode(0o666).create(&addr2).unwrap();
    let mode = std::fs::metadata(shm_path(&addr2))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666);
    assert!(matches!(
        RingBuilder::new().mode(0o1777).create(unique("mode")),
        Err(Error::InvalidConfig { what: "mode", .. })
    ));
}

#[test]
fn bad_geometry_is_refused_before_anything_is_created() {
    for (slots, size) in [(0, 64), (3, 64), (4, 0), (4, 100), (4, 1 << 31)] {
        let addr = unique("geom");
        let r = RingBuilder::new()
            .slots(slots)
            .slot_size(size)
            .create(&addr);
        assert!(
            matches!(r, Err(Error::InvalidConfig { .. })),
            "{slots}x{size}"
        );
        assert!(!std::path::Path::new(&shm_path(&addr)).exists());
    }
}

#[test]
fn file_backend() {
    let dir = std::env::temp_dir().join(format!("shmpipe-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ring");
    let addr = format!("file:{}", path.display());
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new()
        .slots(4)
        .slot_size(128)
        .create(&addr)
        .unwrap();
    let info = ring.info();
    assert_eq!(info.backend, Backend::File);
    assert_eq!(info.page_size, 4096);
    // Rounded up to whole pages.
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len() % 4096, 0);
    assert!(meta.len() >= info.total_len);
    assert_eq!(meta.mode() & 0o777, 0o600);
    let mut tx = ring.producer().unwrap();
    let mut rx = Ring::open(&addr).unwrap().consumer().unwrap();
    tx.try_send(b"via a file").unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), b"via a file");
    // A symlink at the final component is refused, for open and create.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let link_addr = format!("file:{}", link.display());
    assert!(matches!(Ring::open(&link_addr), Err(Error::Symlink { .. })));
    assert!(matches!(
        RingBuilder::new().create(&link_addr),
        Err(Error::AlreadyExists { .. })
    ));
    // Not a regular file.
    assert!(matches!(
        Ring::open(format!("file:{}", dir.display())),
        Err(Error::NotARegularFile { .. }) | Err(Error::Io { .. })
    ));
    std::fs::remove_file(&link).unwrap();
    drop((tx, rx, ring));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn memfd_rings_share_through_their_fd() {
    let ring = RingBuilder::new()
        .slots(4)
        .slot_size(128)
        .create_memfd("test")
        .unwrap();
    assert_eq!(ring.info().backend, Backend::Memfd);
    assert!(ring.address().is_none());
    let fd = ring.fd().unwrap().as_fd().try_clone_to_owned().unwrap();
    let other = Ring::from_fd(fd).unwrap();
    assert_eq!(other.info().backend, Backend::Memfd);
    let mut tx = ring.producer().unwrap();
    let mut rx = other.consumer().unwrap();
    tx.try_send(b"memfd").unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), b"memfd");
    // Sealed: it can neither shrink nor grow.
    let f = std::fs::File::from(ring.fd().unwrap().try_clone_to_owned().unwrap());
    assert!(f.set_len(0).is_err());
    assert!(f.set_len(1 << 30).is_err());
    assert!(ring.unlink().is_err());
}

#[test]
fn read_only_open_inspects_but_cannot_claim() {
    let addr = unique("ro");
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new().create(&addr).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"abc").unwrap();
    let ro = RingBuilder::new().open_read_only(&addr).unwrap();
    let info = ro.info();
    assert_eq!((info.head, info.tail), (0, 1));
    assert!(matches!(ro.consumer(), Err(Error::Unsupported { .. })));
}

#[test]
fn malformed_addresses() {
    for bad in [
        "shm:",
        "shm:a/b",
        "nfs:x",
        "file:",
        "sysv:0",
        "memfd:x",
        "sysv:/x:0",
    ] {
        match Ring::open(bad) {
            Err(e @ Error::InvalidAddress { .. }) => assert!(e.to_string().contains(bad)),
            other => panic!("{bad}: {other:?}"),
        }
    }
}
