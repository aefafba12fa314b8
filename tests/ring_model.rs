//! Property tests: the ring against a plain model (a queue of messages and a byte count),
//! over random operation sequences, capacities and start indices (including ones that make
//! head and tail wrap past 2^32).

use std::collections::VecDeque;
use std::ptr::NonNull;

use proptest::prelude::*;
use shmframes::ring::{Consumer, Message, Producer, PushError, RingMemory, RingPushError};

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    PushInPlace(usize),
    PadToEnd,
    Commit,
    Abandon,
    Pop,
    /// Read without releasing (a lease), released later in order.
    Hold,
    ReleaseHeld,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..80).prop_map(Op::Push),
        2 => (0usize..80).prop_map(Op::PushInPlace),
        1 => Just(Op::PadToEnd),
        3 => Just(Op::Commit),
        1 => Just(Op::Abandon),
        4 => Just(Op::Pop),
        2 => Just(Op::Hold),
        2 => Just(Op::ReleaseHeld),
    ]
}

struct Model {
    /// Committed, unread messages.
    ready: VecDeque<Vec<u8>>,
    /// Appended, uncommitted.
    pending: Vec<Vec<u8>>,
    /// Bytes in the ring (committed + pending + held), prefixes included.
    used: u64,
    pending_bytes: u64,
    /// Held (read, unreleased) messages: their sizes.
    held: VecDeque<u64>,
    write: u64,
}

fn payload(counter: &mut u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *counter = counter.wrapping_add(1);
            *counter
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_model(
        cap_log in 4u32..9,
        start in prop_oneof![Just(0u32), Just(u32::MAX - 40), any::<u32>()],
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let capacity = 1u32 << cap_log;
        let mut buf = vec![0u64; (16 + capacity as usize) / 8 + 1];
        let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: buf outlives p and c; one producer and one consumer.
        let (mut p, mut c) = unsafe {
            let mem = RingMemory::init(base, 16 + capacity as usize, capacity, start, 0).unwrap();
            (Producer::new(mem).unwrap(), Consumer::new(mem))
        };
        let mut m = Model { ready: VecDeque::new(), pending: Vec::new(), used: 0, pending_bytes: 0, held: VecDeque::new(), write: start as u64 };
        let mut counter = 0u8;
        let mut held_msgs: VecDeque<Message> = VecDeque::new();
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Push(len) => {
                    let data = payload(&mut counter, len);
                    let need = 4 + len as u64;
                    let r = p.append(&data);
                    if need > capacity as u64 {
                        prop_assert_eq!(r, Err(RingPushError::Push(PushError::TooLarge { needed: need, capacity })));
                    } else if m.used + need > capacity as u64 {
                        prop_assert_eq!(r, Err(RingPushError::Push(PushError::Full)));
                    } else {
                        prop_assert!(r.is_ok());
                        m.used += need; m.pending_bytes += need; m.write += need;
                        m.pending.push(data);
                    }
                }
                Op::PushInPlace(len) => {
                    let need = 4 + len as u64;
                    let to_end = capacity as u64 - ((m.write + 4) % capacity as u64);
                    let fits = need <= capacity as u64 && m.used + need <= capacity as u64 && len as u64 <= to_end;
                    let data = payload(&mut counter, len);
                    match p.append_in_place(len as u32) {
                        Ok(slot) => {
                            prop_assert!(fits, "in-place accepted a message that does not fit or splits");
                            prop_assert_eq!(slot.len(), len);
                            slot.copy_from_slice(&data);
                            m.used += need; m.pending_bytes += need; m.write += need;
                            m.pending.push(data);
                        }
                        Err(_) => prop_assert!(!fits, "in-place refused a message that fits"),
                    }
                }
                Op::PadToEnd => {
                    let rest = capacity as u64 - (m.write % capacity as u64);
                    let r = p.append_pad_to_end(|s| s.fill(0xAB));
                    if rest >= 4 && m.used + rest <= capacity as u64 {
                        prop_assert!(r.is_ok());
                        m.used += rest; m.pending_bytes += rest; m.write += rest;
                        m.pending.push(vec![0xAB; rest as usize - 4]);
                        prop_assert_eq!(p.bytes_to_end(), capacity);
                    } else {
                        prop_assert!(r.is_err());
                    }
                }
                Op::Commit => {
                    p.commit();
                    m.ready.extend(m.pending.drain(..));
                    m.pending_bytes = 0;
                }
                Op::Abandon => {
                    p.abandon();
                    m.used -= m.pending_bytes; m.write -= m.pending_bytes;
                    m.pending.clear(); m.pending_bytes = 0;
                }
                Op::Pop => {
                    if !held_msgs.is_empty() { continue; } // pop releases at once: only without leases
                    let got = c.pop(&mut out).unwrap();
                    match m.ready.pop_front() {
                        Some(exp) => { prop_assert!(got); prop_assert_eq!(&out, &exp); m.used -= 4 + exp.len() as u64; }
                        None => prop_assert!(!got),
                    }
                }
                Op::Hold => {
                    let msg = c.peek().unwrap();
                    match m.ready.pop_front() {
                        Some(exp) => {
                            let msg = msg.unwrap();
                            let mut v = Vec::new();
                            c.copy_payload(&msg, &mut v);
                            prop_assert_eq!(&v, &exp);
                            if let Some(s) = c.payload(&msg) { prop_assert_eq!(s, &exp[..]); }
                            c.advance(&msg);
                            held_msgs.push_back(msg);
                            m.held.push_back(4 + exp.len() as u64);
                        }
                        None => prop_assert!(msg.is_none()),
                    }
                }
                Op::ReleaseHeld => {
                    if let Some(msg) = held_msgs.pop_front() {
                        c.release_to(msg.end());
                        m.used -= m.held.pop_front().unwrap();
                    }
                }
            }
            // The free space the producer computes equals the model's.
            prop_assert_eq!(p.refresh_free().unwrap() as u64, capacity as u64 - m.used);
        }
    }
}
