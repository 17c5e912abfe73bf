//! A forged source address through a raw socket (root only).

use super::*;

/// The ones'-complement sum of `bytes` (IPv4 and UDP checksums).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet carrying a UDP datagram from `src` to `dst`.
fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_length = 8 + payload.len();
    let total = 20 + udp_length;
    let mut packet = Vec::with_capacity(total);
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&(total as u16).to_be_bytes());
    packet.extend_from_slice(&fastrand::u16(1..).to_be_bytes());
    packet.extend_from_slice(&[0x40, 0, 64, libc::IPPROTO_UDP as u8, 0, 0]);
    packet.extend_from_slice(&src.ip().octets());
    packet.extend_from_slice(&dst.ip().octets());
    let ip_sum = checksum(&packet[..20]);
    packet[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let mut udp = Vec::with_capacity(udp_length);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&(udp_length as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12 + udp.len());
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, libc::IPPROTO_UDP as u8]);
    pseudo.extend_from_slice(&(udp_length as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let udp_sum = match checksum(&pseudo) {
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&udp_sum.to_be_bytes());
    packet.extend_from_slice(&udp);
    packet
}

/// A raw IPv4 socket (the caller writes the IP header), or `None` without
/// the privilege.
fn raw_socket() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain socket(2) call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Sends `packet` (IP header included) on the raw socket `socket` to `dst`.
fn send_raw(socket: &std::os::fd::OwnedFd, packet: &[u8], dst: SocketAddrV4) {
    use std::os::fd::AsRawFd;
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `packet` and `address` outlive the call; the lengths are
    // theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(
        sent,
        packet.len() as isize,
        "sendto: {}",
        std::io::Error::last_os_error()
    );
}

/// Goal: the source address proves nothing: a `Placement` that would take
/// bucket 2 from replica 1, sent in packets whose source is the
/// controller's address and port (a raw socket), unsealed, sealed with the
/// client key, and relabelled as a member's, is dropped: the bucket stays
/// at replica 1 and writable, and replica 1 counts the drops. Needs root
/// (a raw socket); otherwise it says it skipped.
#[test]
fn a_spoofed_source_address_is_not_believed() {
    let Some(raw) = raw_socket() else {
        eprintln!("skipped: needs root for a raw socket");
        return;
    };
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let controller = config.controller.addr;
    let replica = config.addr_of(Id::from(1)).unwrap();
    let bucket = 2;
    let before = placement_line(&cluster.status(), bucket);
    let steal = protocol(vec![Msg::Placements(vec![(
        Bucket(bucket),
        BucketPlacement {
            epoch: Epoch(1_000),
            group: GroupId(2),
            leader: Id::from(4),
            sync_followers: vec![Id::from(5)],
            async_followers: vec![Id::from(6)],
        },
    )])]);
    let sealed = seal(
        &key_of(&cluster, KeyKind::Client),
        KeyKind::Client,
        0,
        1,
        &steal,
    );
    for payload in [steal.clone(), sealed.clone(), relabelled(&sealed, 0)] {
        send_raw(&raw, &udp_packet(controller, replica, &payload), replica);
    }
    let status = cluster.wait_until(Duration::from_secs(10), "the drops counted", |status| {
        dropped(status, "replica 1", "undecodable") >= 1
            && dropped(status, "replica 1", "unexpected") >= 1
            && dropped(status, "replica 1", "bad MAC") >= 1
    });
    eprintln!("{status}");
    let cabin = cabins_in(bucket, 1).remove(0);
    let booked = cluster.book(&cabin);
    assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
    assert!(
        stdout(&booked).contains(&format!("bucket {bucket} at e1;")),
        "{}",
        stdout(&booked)
    );
    assert_eq!(placement_line(&cluster.status(), bucket), before);
    let status = cluster.status();
    let replica_1 = drops(&status, "replica 1");
    assert!(
        replica_1.values().sum::<u64>() >= 3,
        "{replica_1:?}\n{status}"
    );
    assert_all_up(&cluster);
}
