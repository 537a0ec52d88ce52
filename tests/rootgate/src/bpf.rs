//! The one bpf(2) call the root tests make themselves: a map creation,
//! the smallest call the `bpf` sensor reports.

use std::os::fd::{FromRawFd, OwnedFd};

/// `bpf(BPF_MAP_CREATE)` of a one-entry array (4-byte keys and values)
/// named `name` (cut to the kernel's 15 bytes) from the calling process.
pub fn create_array_map(name: &[u8]) -> std::io::Result<OwnedFd> {
    /// The attribute's prefix up to `map_name`; the kernel takes a
    /// shorter attribute as zero-filled.
    #[repr(C)]
    #[derive(Default)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; 16],
    }
    let mut a = MapCreate {
        map_type: 2, // BPF_MAP_TYPE_ARRAY
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        ..Default::default()
    };
    let n = name.len().min(15);
    a.map_name[..n].copy_from_slice(&name[..n]);
    // SAFETY: BPF_MAP_CREATE (0) with a valid attribute of its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0,
            &raw mut a,
            std::mem::size_of::<MapCreate>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
