//! Loom model of direct tail calls: the real `kbpf::maps::PokedSlots` (the slots and poke
//! table of `kernel/src/maps/prog_array/poke.rs`: a slot write takes the poke lock, re-points
//! the slot's direct sites through `JitImage::poke`, then `xchg`es the slot and puts the old
//! program after a grace period) against a CPU executing the direct site.
//!
//! The site is 5 bytes of a [`LoomHost`]'s text, rewritten by the host's `text_poke` in the
//! real `int3` order (`kbpf::host::text_poke_bp`). The model JIT image encodes a site as the
//! JIT does — a 5-byte nop to fall through, `jmp` to jump — with the target program's token in
//! place of the `rel32` (model programs have no code address). A program's drop poisons its
//! body; a run that jumps into a put program reads the poison (or loom reports the unordered
//! accesses), and a run that fetches a mix of old and new bytes fails to decode.
#![cfg(loom)]

use kbpf::host::{ExecRegion, Host};
use kbpf::jit::{JitImage, PokeSite};
use kbpf::maps::{PokedSlots, TailCallTarget};
use kbpf::sync::rcu::RcuDomain;
use kbpf::{Errno, Result};
use kbpf_loom::host::LoomHost;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

const POISON: u64 = 0xdead;
/// The JIT's 5-byte nop: a site that falls through.
const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];
const JMP: u8 = 0xe9;

/// A program's code: loom tracks every access to it.
struct Body(UnsafeCell<u64>);

// SAFETY: loom's `UnsafeCell` checks each access against happens-before and fails the model on
// a race; that is the point of the model.
unsafe impl Sync for Body {}
// SAFETY: as above.
unsafe impl Send for Body {}

/// Stands for a program: its token (what a site jumps to) and a body poisoned when the last
/// reference is put. Bodies outlive programs so that a wrong jump reads poison, not freed
/// memory.
struct Prog {
    token: usize,
    body: Arc<Body>,
}

impl TailCallTarget for Prog {
    fn tail_call_target(&self) -> usize {
        self.token
    }
}

impl Drop for Prog {
    fn drop(&mut self) {
        // SAFETY: loom-checked write (see `Body`).
        self.body.0.with_mut(|v| unsafe { *v = POISON });
    }
}

/// The bodies of the model's programs, by token (token 0 is "no program").
struct Bodies(Vec<Arc<Body>>);

impl Bodies {
    fn new(values: &[u64]) -> Self {
        let mut v = vec![Arc::new(Body(UnsafeCell::new(0)))];
        v.extend(values.iter().map(|&x| Arc::new(Body(UnsafeCell::new(x)))));
        Bodies(v)
    }

    fn prog(&self, token: usize) -> Arc<Prog> {
        Arc::new(Prog {
            token,
            body: self.0[token].clone(),
        })
    }

    fn is_poisoned(&self, token: usize) -> bool {
        // SAFETY: loom-checked read (see `Body`).
        self.0[token].0.with(|v| unsafe { *v }) == POISON
    }
}

/// A JIT image with one direct site at the start of the host's text, re-pointed through the
/// host's `text_poke` as the x86 JIT's image does it (`jit/src/compile/image.rs`).
struct Image {
    host: Arc<LoomHost>,
    region: ExecRegion,
    sites: [PokeSite; 1],
}

impl Image {
    fn new(host: Arc<LoomHost>) -> Self {
        let region = host.region();
        Image {
            host,
            region,
            sites: [PokeSite {
                map: 0,
                index: 0,
                offset: 0,
            }],
        }
    }

    /// The site's bytes for `target` (0: fall through).
    fn site_bytes(target: usize) -> [u8; 5] {
        if target == 0 {
            return NOP5;
        }
        let mut b = [JMP, 0, 0, 0, 0];
        b[1..].copy_from_slice(&(target as u32).to_le_bytes());
        b
    }
}

impl JitImage for Image {
    fn entry(&self) -> usize {
        self.region.rx as usize
    }

    fn tail_call_entry(&self) -> usize {
        self.entry()
    }

    fn size(&self) -> usize {
        NOP5.len()
    }

    fn code(&self) -> Result<Vec<u8>> {
        let mut b = vec![0; NOP5.len()];
        self.host.peek(0, &mut b);
        Ok(b)
    }

    fn insn_offsets(&self) -> &[u32] {
        &[]
    }

    fn poke_sites(&self) -> &[PokeSite] {
        &self.sites
    }

    fn poke(&self, site: usize, target: usize) -> Result {
        let s = self.sites.get(site).ok_or(Errno::EINVAL)?;
        let new = Image::site_bytes(target);
        let mut cur = [0; 5];
        self.host.peek(s.offset as usize, &mut cur);
        if cur == new {
            return Ok(());
        }
        self.host.text_poke(&self.region, s.offset as usize, &new)
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

/// A JIT'd run on CPU `cpu` reaching the direct site: falls through (`None`) or jumps into a
/// program and reads its body.
fn run(rcu: &RcuDomain, host: &LoomHost, bodies: &Bodies, cpu: usize) -> Option<u64> {
    let _g = rcu.read_lock(cpu);
    let mut insn = [0; 5];
    host.execute(cpu, 0, &mut insn);
    if insn == NOP5 {
        return None;
    }
    assert_eq!(insn[0], JMP, "torn instruction {insn:02x?}");
    let token = u32::from_le_bytes(insn[1..].try_into().unwrap()) as usize;
    let body = bodies
        .0
        .get(token)
        .unwrap_or_else(|| panic!("torn instruction {insn:02x?}"));
    // SAFETY: loom-checked read (see `Body`). The protocol under test: the site was
    // re-pointed before the slot's old reference went to `call_rcu`, so a program reached here
    // outlives this section.
    let v = body.0.with(|v| unsafe { *v });
    assert_ne!(v, POISON, "a direct jump reached a program already put");
    Some(v)
}

/// Everything a model shares between its threads.
struct Model {
    rcu: RcuDomain,
    host: Arc<LoomHost>,
    slots: PokedSlots<Prog>,
    bodies: Bodies,
}

impl Model {
    fn new(values: &[u64]) -> Arc<Model> {
        Arc::new(Model {
            rcu: RcuDomain::new(2),
            host: Arc::new(LoomHost::new(2, &NOP5)),
            slots: PokedSlots::new(1).unwrap(),
            bodies: Bodies::new(values),
        })
    }

    /// Slot 0's write, as `ProgArray::update`/`delete` make it.
    fn write(&self, token: Option<usize>) {
        let new = token.map(|t| self.bodies.prog(t));
        self.slots.write(&self.rcu, 0, new).unwrap();
    }

    /// Reclaims what is left without blocking, as a busy updater would, then checks every
    /// program was put.
    fn drain(&self) {
        while self.rcu.pending() > 0 {
            self.rcu.poll();
            thread::yield_now();
        }
    }
}

#[test]
fn replace_then_delete_vs_direct_jump() {
    builder().check(|| {
        let m = Model::new(&[1, 2]);
        let image = Image::new(m.host.clone());
        m.slots.track(&image, 0, 0).unwrap();
        m.write(Some(1));
        let reader = {
            let m = m.clone();
            thread::spawn(move || run(&m.rcu, &m.host, &m.bodies, 0))
        };
        // Grace periods may end on any thread at any time, here between the writer's steps.
        let reclaimer = {
            let m = m.clone();
            thread::spawn(move || {
                m.rcu.poll();
            })
        };
        m.write(Some(2));
        m.write(None);
        reclaimer.join().unwrap();
        m.drain();
        let seen = reader.join().unwrap();
        assert!(matches!(seen, None | Some(1) | Some(2)), "{seen:?}");
        assert!(m.bodies.is_poisoned(1) && m.bodies.is_poisoned(2));
        m.slots.untrack(&image);
        assert_eq!(m.slots.poke_sites(), 0);
    });
}

#[test]
fn fill_vs_direct_jump() {
    builder().check(|| {
        let m = Model::new(&[7]);
        let image = Image::new(m.host.clone());
        m.slots.track(&image, 0, 0).unwrap();
        let reader = {
            let m = m.clone();
            thread::spawn(move || run(&m.rcu, &m.host, &m.bodies, 1))
        };
        m.write(Some(1));
        assert!(matches!(reader.join().unwrap(), None | Some(7)));
        m.write(None);
        m.rcu.barrier();
        assert!(m.bodies.is_poisoned(1));
        m.slots.untrack(&image);
    });
}
