//! One connection of the hostile client: its Wayland objects, the random requests it sends on
//! them, and the few it writes to the socket by hand (requests on objects it has already
//! destroyed, which wayland-client refuses to send).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use wayland_client::globals::{registry_queue_init, GlobalListContents};
use wayland_client::protocol::{
    wl_buffer, wl_callback, wl_compositor, wl_output, wl_region, wl_registry, wl_shm, wl_shm_pool,
    wl_surface,
};
use wayland_client::{
    delegate_noop, event_created_child, Connection, Dispatch, EventQueue, Proxy, QueueHandle,
};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_feedback_v1, zwp_linux_dmabuf_v1,
};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

use crate::rng::Rng;

/// dma-bufs shared by every connection of the process, so one client's buffer turns up in
/// another client's requests (the compositor sees two clients naming one dma-buf).
pub struct Dmabufs(pub Vec<cenalloc::SharedBuffer>);

impl Dmabufs {
    /// Allocates a few XR24 LINEAR buffers of different sizes for the CPU alone (the system
    /// heap in the guest); with none at all the client still runs, with fewer dma-buf cases.
    pub fn allocate(rng: &mut Rng) -> Dmabufs {
        let allocator = cenalloc::Allocator::new();
        let mut sizes = vec![(640, 480), (64, 64), (1, 1)];
        sizes.push((rng.range(1, 700) as u32, rng.range(1, 500) as u32));
        let buffers = sizes
            .into_iter()
            .filter_map(|(w, h)| {
                let request = cenalloc::BufferRequest::image(
                    w,
                    h,
                    cenalloc::Fourcc::Xrgb8888,
                    cenalloc::Usage::CPU_WRITE,
                )
                .with_modifiers([cenalloc::Modifier::LINEAR]);
                match allocator.allocate_and_import(&request, &[]) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        eprintln!("hostile-client: no {w}x{h} dma-buf: {e}");
                        None
                    }
                }
            })
            .collect();
        Dmabufs(buffers)
    }
}

/// What the event handlers learn.
#[derive(Default)]
pub struct Events {
    /// Configure serials received, by the key of the xdg_surface they came for.
    serials: HashMap<u64, Vec<u32>>,
    /// wl_buffers the compositor made for `zwp_linux_buffer_params_v1.create`.
    created: Vec<wl_buffer::WlBuffer>,
    /// The last xdg_wm_base ping not answered yet.
    ping: Option<u32>,
    /// The sync callback of the last round trip arrived.
    synced: bool,
}

/// A wl_surface and what the client did with it.
struct Surface {
    key: u64,
    surface: wl_surface::WlSurface,
    /// Never given an xdg role: any buffer may be attached (the compositor shows no surface
    /// without a toplevel).
    plain: bool,
    xdg: Option<xdg_surface::XdgSurface>,
    toplevel: Option<xdg_toplevel::XdgToplevel>,
    /// A configure of its xdg_surface was acked with the right serial.
    acked: bool,
    /// A live buffer is attached and not yet committed.
    pending_buffer: bool,
    /// The wl_surface was destroyed; its xdg objects are still used.
    gone: bool,
}

/// Requests sent, and which of them went out by hand.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Requests through wayland-client.
    pub requests: u64,
    /// Requests written to the socket by hand on destroyed objects.
    pub raw: u64,
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// The compositor sent a protocol error: interface, code, message.
    ProtocolError(String, u32, String),
    /// The compositor closed the connection without an error (it does so for a request on
    /// an object id it no longer knows).
    Closed(String),
    /// The compositor did not answer a round trip in time.
    Stalled,
}

/// One connection.
pub struct Session {
    conn: Connection,
    queue: EventQueue<Events>,
    qh: QueueHandle<Events>,
    events: Events,
    compositor: wl_compositor::WlCompositor,
    shm: wl_shm::WlShm,
    dmabuf: zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
    wm_base: Option<xdg_wm_base::XdgWmBase>,
    surfaces: Vec<Surface>,
    pools: Vec<(wl_shm_pool::WlShmPool, i32)>,
    buffers: Vec<wl_buffer::WlBuffer>,
    params: Vec<zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1>,
    feedbacks: Vec<zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1>,
    next_key: u64,
    /// Allow windows to be shown (acked, then a live buffer committed).
    map: bool,
    /// Print each request.
    trace: bool,
    /// Requests sent on this connection.
    pub sent: Sent,
}

/// Formats for linux-dmabuf params: what the compositor offers, what it does not, and junk.
const DMABUF_FORMATS: [u32; 8] = [
    u32::from_le_bytes(*b"XR24"),
    u32::from_le_bytes(*b"AR24"),
    u32::from_le_bytes(*b"XB24"),
    u32::from_le_bytes(*b"RG16"),
    u32::from_le_bytes(*b"NV12"),
    u32::from_le_bytes(*b"YU12"),
    0,
    0xdead_beef,
];

/// Modifiers: LINEAR (offered), INVALID (an implicit layout, not offered), a vendor's tiling.
const MODIFIERS: [u64; 4] = [0, 0x00ff_ffff_ffff_ffff, (1 << 56) | 1, u64::MAX];

/// wl_shm formats: the two mandatory ones and some the compositor does not offer.
const SHM_FORMATS: [wl_shm::Format; 5] = [
    wl_shm::Format::Argb8888,
    wl_shm::Format::Xrgb8888,
    wl_shm::Format::Rgb565,
    wl_shm::Format::Nv12,
    wl_shm::Format::Abgr16161616f,
];

impl Session {
    /// Connects to `$WAYLAND_DISPLAY` and binds the globals the client abuses.
    pub fn connect(map: bool, trace: bool) -> Result<Session, String> {
        let conn = Connection::connect_to_env().map_err(|e| format!("cannot connect: {e}"))?;
        let (globals, queue) =
            registry_queue_init::<Events>(&conn).map_err(|e| format!("registry: {e}"))?;
        let qh = queue.handle();
        let compositor = globals
            .bind(&qh, 1..=6, ())
            .map_err(|e| format!("wl_compositor: {e}"))?;
        let shm = globals
            .bind(&qh, 1..=1, ())
            .map_err(|e| format!("wl_shm: {e}"))?;
        let dmabuf = globals
            .bind(&qh, 3..=5, ())
            .map_err(|e| format!("zwp_linux_dmabuf_v1: {e}"))?;
        let wm_base = globals
            .bind(&qh, 1..=6, ())
            .map_err(|e| format!("xdg_wm_base: {e}"))?;
        Ok(Session {
            conn,
            queue,
            qh,
            events: Events::default(),
            compositor,
            shm,
            dmabuf,
            wm_base: Some(wm_base),
            surfaces: Vec::new(),
            pools: Vec::new(),
            buffers: Vec::new(),
            params: Vec::new(),
            feedbacks: Vec::new(),
            next_key: 0,
            map,
            trace,
            sent: Sent::default(),
        })
    }

    fn log(&mut self, what: std::fmt::Arguments<'_>) {
        self.sent.requests += 1;
        if self.trace {
            eprintln!("hostile-client: {what}");
        }
    }

    /// Sends one random request (or a short sequence that belongs together, such as a
    /// destroy followed by a request on the destroyed object).
    pub fn step(&mut self, rng: &mut Rng, dmabufs: &Dmabufs) {
        self.events
            .created
            .drain(..)
            .for_each(|b| self.buffers.push(b));
        match rng.below(100) {
            0..=9 => self.create_surface(rng),
            10..=21 => self.attach(rng),
            22..=27 => self.surface_misc(rng),
            28..=35 => self.commit(rng),
            36..=38 => self.destroy_surface(rng),
            39..=45 => self.create_pool(rng),
            46..=51 => self.pool_request(rng),
            52..=56 => self.destroy_buffer(rng),
            57..=62 => self.create_params(rng),
            63..=69 => self.params_add(rng, dmabufs),
            70..=75 => self.params_create(rng),
            76..=77 => self.feedback(rng),
            78..=83 => self.get_xdg_surface(rng),
            84..=86 => self.ack_configure(rng),
            87..=92 => self.toplevel_request(rng),
            93..=97 => self.destroy_xdg(rng),
            _ => self.wm_base_request(rng),
        }
    }

    fn create_surface(&mut self, rng: &mut Rng) {
        let surface = self.compositor.create_surface(&self.qh, ());
        self.next_key += 1;
        let plain = rng.chance(40);
        self.log(format_args!(
            "wl_surface#{} created",
            surface.id().protocol_id()
        ));
        self.surfaces.push(Surface {
            key: self.next_key,
            surface,
            plain,
            xdg: None,
            toplevel: None,
            acked: false,
            pending_buffer: false,
            gone: false,
        });
    }

    /// A surface whose wl_surface is alive.
    fn pick_surface(&self, rng: &mut Rng) -> Option<usize> {
        let live: Vec<usize> = (0..self.surfaces.len())
            .filter(|&i| !self.surfaces[i].gone)
            .collect();
        rng.index(live.len()).map(|i| live[i])
    }

    /// Whether a live buffer may be attached to surface `i` without the risk of showing a
    /// window over the well-behaved client: a plain surface (never shown), or a toplevel not
    /// yet configured (which must get a protocol error, not be shown). With `--map`, always.
    fn may_attach_live(&self, i: usize) -> bool {
        let s = &self.surfaces[i];
        self.map || s.plain || (s.xdg.is_some() && s.toplevel.is_some() && !s.acked)
    }

    fn attach(&mut self, rng: &mut Rng) {
        let Some(i) = self.pick_surface(rng) else {
            return self.create_surface(rng);
        };
        // Version 5 makes a non-zero offset in attach a protocol error (invalid_offset).
        let (x, y) = if rng.chance(5) {
            (rng.range(-8, 8) as i32, rng.range(-8, 8) as i32)
        } else {
            (0, 0)
        };
        let buffer = rng.index(self.buffers.len());
        match buffer {
            Some(b) if self.may_attach_live(i) => {
                self.surfaces[i]
                    .surface
                    .attach(Some(&self.buffers[b]), x, y);
                self.surfaces[i].pending_buffer = true;
                let (s, b) = (
                    self.surfaces[i].surface.id().protocol_id(),
                    self.buffers[b].id().protocol_id(),
                );
                self.log(format_args!(
                    "wl_surface#{s}.attach(wl_buffer#{b}, {x}, {y})"
                ));
            }
            _ => {
                self.surfaces[i].surface.attach(None, x, y);
                self.surfaces[i].pending_buffer = false;
                let s = self.surfaces[i].surface.id().protocol_id();
                self.log(format_args!("wl_surface#{s}.attach(null, {x}, {y})"));
            }
        }
    }

    fn surface_misc(&mut self, rng: &mut Rng) {
        let Some(i) = self.pick_surface(rng) else {
            return self.create_surface(rng);
        };
        let surface = self.surfaces[i].surface.clone();
        let id = surface.id().protocol_id();
        let (x, y, w, h) = (
            rng.dimension(),
            rng.dimension(),
            rng.dimension(),
            rng.dimension(),
        );
        match rng.below(6) {
            0 => {
                surface.damage(x, y, w, h);
                self.log(format_args!("wl_surface#{id}.damage({x}, {y}, {w}, {h})"));
            }
            1 if surface.version() >= 4 => {
                surface.damage_buffer(x, y, w, h);
                self.log(format_args!(
                    "wl_surface#{id}.damage_buffer({x}, {y}, {w}, {h})"
                ));
            }
            2 => {
                surface.frame(&self.qh, ());
                self.log(format_args!("wl_surface#{id}.frame"));
            }
            3 if surface.version() >= 3 => {
                // Scales below 1 are a protocol error (invalid_scale); a scale the buffer's
                // size is no multiple of is one since version 6 (invalid_size).
                let scale = rng.pick(&[1, 1, 2, 3, 0, -1]);
                surface.set_buffer_scale(scale);
                self.log(format_args!("wl_surface#{id}.set_buffer_scale({scale})"));
            }
            4 if surface.version() >= 2 => {
                use wl_output::Transform;
                let t = rng.pick(&[
                    Transform::Normal,
                    Transform::_90,
                    Transform::_180,
                    Transform::Flipped270,
                ]);
                surface.set_buffer_transform(t);
                self.log(format_args!("wl_surface#{id}.set_buffer_transform({t:?})"));
            }
            5 if surface.version() >= 5 => {
                surface.offset(x, y);
                self.log(format_args!("wl_surface#{id}.offset({x}, {y})"));
            }
            _ => {
                // A region of random rectangles (negative sizes too) as the opaque or input
                // region, destroyed at once (the surface keeps a copy).
                let region = self.compositor.create_region(&self.qh, ());
                self.log(format_args!("wl_compositor.create_region"));
                for _ in 0..rng.range(0, 3) {
                    let (x, y, w, h) = (
                        rng.dimension(),
                        rng.dimension(),
                        rng.dimension(),
                        rng.dimension(),
                    );
                    if rng.chance(70) {
                        region.add(x, y, w, h);
                    } else {
                        region.subtract(x, y, w, h);
                    }
                    self.log(format_args!("wl_region.add/subtract({x}, {y}, {w}, {h})"));
                }
                if rng.chance(50) {
                    surface.set_opaque_region(Some(&region));
                } else {
                    surface.set_input_region(Some(&region));
                }
                region.destroy();
                self.log(format_args!("wl_surface#{id}.set_opaque/input_region"));
                self.sent.requests += 1;
            }
        }
    }

    fn commit(&mut self, rng: &mut Rng) {
        let Some(i) = self.pick_surface(rng) else {
            return self.create_surface(rng);
        };
        self.surfaces[i].surface.commit();
        self.surfaces[i].pending_buffer = false;
        let id = self.surfaces[i].surface.id().protocol_id();
        self.log(format_args!("wl_surface#{id}.commit"));
    }

    fn destroy_surface(&mut self, rng: &mut Rng) {
        let Some(i) = self.pick_surface(rng) else {
            return;
        };
        // Its role objects may still be alive: a destroy order the protocol forbids.
        let s = self.surfaces.swap_remove(i);
        let id = s.surface.id().protocol_id();
        s.surface.destroy();
        self.log(format_args!("wl_surface#{id}.destroy"));
        if rng.chance(30) {
            // And commit the surface just destroyed (wl_surface.commit, opcode 6).
            self.raw(id, 6, &[], "wl_surface.commit on the destroyed surface");
        }
        // Its xdg objects stay in use: requests on them once their surface is gone.
        if let (Some(xdg), false) = (s.xdg, rng.chance(50)) {
            self.surfaces.push(Surface {
                key: s.key,
                surface: s.surface,
                plain: false,
                xdg: Some(xdg),
                toplevel: s.toplevel,
                acked: true,
                pending_buffer: false,
                gone: true,
            });
        }
    }

    fn create_pool(&mut self, rng: &mut Rng) {
        // A memfd of some size, claimed bigger or smaller than it is; or an fd that cannot
        // be mapped at all (a pipe).
        let any = rng.below(1 << 20);
        let file_size = rng.pick(&[0u64, 4096, 640 * 480 * 4, any]);
        let claimed = match rng.below(4) {
            0 => rng.dimension(),
            1 => (file_size as i32).saturating_add(rng.range(1, 1 << 20) as i32),
            _ => file_size as i32,
        };
        let fd: OwnedFd = if rng.chance(85) {
            match memfd(file_size) {
                Ok(fd) => fd,
                Err(e) => return eprintln!("hostile-client: {e}"),
            }
        } else {
            match std::io::pipe() {
                Ok((read, _write)) => read.into(),
                Err(e) => return eprintln!("hostile-client: pipe: {e}"),
            }
        };
        let pool = self.shm.create_pool(fd.as_fd(), claimed, &self.qh, ());
        let id = pool.id().protocol_id();
        self.pools.push((pool, claimed));
        self.log(format_args!(
            "wl_shm.create_pool(wl_shm_pool#{id}, fd of {file_size} bytes, size {claimed})"
        ));
        if rng.chance(20) && file_size > 0 {
            // Shrink the file under the compositor's mapping: reading it now faults.
            let _ = rustix::fs::ftruncate(&fd, file_size / 2);
        }
    }

    fn pool_request(&mut self, rng: &mut Rng) {
        let Some(i) = rng.index(self.pools.len()) else {
            return self.create_pool(rng);
        };
        let (pool, size) = self.pools[i].clone();
        let id = pool.id().protocol_id();
        match rng.below(5) {
            0 => {
                let new = if rng.chance(50) {
                    size.saturating_add(rng.range(0, 1 << 16) as i32)
                } else {
                    rng.dimension()
                };
                pool.resize(new);
                self.pools[i].1 = new.max(size);
                self.log(format_args!("wl_shm_pool#{id}.resize({new})"));
            }
            1 => {
                self.pools.swap_remove(i);
                pool.destroy();
                self.log(format_args!("wl_shm_pool#{id}.destroy"));
                if rng.chance(30) {
                    // wl_shm_pool.resize (opcode 2) on the destroyed pool.
                    self.raw(
                        id,
                        2,
                        &[size as u32],
                        "wl_shm_pool.resize on the destroyed pool",
                    );
                }
            }
            _ => {
                // Mostly a buffer that fits the pool; else anything.
                let (w, h, stride, offset) = if rng.chance(60) && size > 0 {
                    let w = rng.range(1, 640) as i32;
                    let stride = w * 4;
                    let h = rng.range(1, (size / stride).clamp(1, 480) as i64) as i32;
                    (w, h, stride, 0)
                } else {
                    (
                        rng.dimension(),
                        rng.dimension(),
                        rng.dimension(),
                        rng.dimension(),
                    )
                };
                let format = rng.pick(&SHM_FORMATS);
                let buffer = pool.create_buffer(offset, w, h, stride, format, &self.qh, ());
                let b = buffer.id().protocol_id();
                self.buffers.push(buffer);
                self.log(format_args!(
                    "wl_shm_pool#{id}.create_buffer(wl_buffer#{b}, {offset}, {w}x{h}, stride {stride}, {format:?})"
                ));
            }
        }
    }

    fn destroy_buffer(&mut self, rng: &mut Rng) {
        let Some(i) = rng.index(self.buffers.len()) else {
            return;
        };
        // Often a buffer still attached (pending) or shown: committing after destroying it.
        let buffer = self.buffers.swap_remove(i);
        let b = buffer.id().protocol_id();
        buffer.destroy();
        self.log(format_args!("wl_buffer#{b}.destroy"));
        if rng.chance(30) {
            if let Some(s) = self.pick_surface(rng) {
                // wl_surface.attach (opcode 1) of the destroyed buffer.
                let s = self.surfaces[s].surface.id().protocol_id();
                self.raw(
                    s,
                    1,
                    &[b, 0, 0],
                    "wl_surface.attach of the destroyed buffer",
                );
            } else {
                // wl_buffer.destroy (opcode 0) once more.
                self.raw(b, 0, &[], "wl_buffer.destroy of the destroyed buffer");
            }
        }
    }

    fn create_params(&mut self, _rng: &mut Rng) {
        let params = self.dmabuf.create_params(&self.qh, ());
        let id = params.id().protocol_id();
        self.params.push(params);
        self.log(format_args!(
            "zwp_linux_dmabuf_v1.create_params(zwp_linux_buffer_params_v1#{id})"
        ));
    }

    fn params_add(&mut self, rng: &mut Rng, dmabufs: &Dmabufs) {
        let Some(i) = rng.index(self.params.len()) else {
            return self.create_params(rng);
        };
        let params = self.params[i].clone();
        let id = params.id().protocol_id();
        // Mostly plane 0 or 1; sometimes a plane index past the four the protocol allows.
        let plane = rng.pick(&[0, 0, 0, 1, 1, 2, 3, 4, 7]);
        let modifier = rng.pick(&MODIFIERS);
        let buffer = rng.index(dmabufs.0.len()).map(|b| dmabufs.0[b].buffer());
        let (offset, stride) = match (&buffer, rng.chance(50)) {
            // The real layout, or close to it.
            (Some(b), true) => {
                let p = b.layout().planes()[0];
                let offset = if rng.chance(70) {
                    p.offset as u32
                } else {
                    rng.field()
                };
                let stride = match rng.below(4) {
                    0 => rng.field(),
                    1 => (p.stride as u32).wrapping_add(rng.range(-64, 64) as u32),
                    _ => p.stride as u32,
                };
                (offset, stride)
            }
            _ => (rng.field(), rng.field()),
        };
        let (hi, lo) = ((modifier >> 32) as u32, modifier as u32);
        let kind = match (&buffer, rng.below(10)) {
            (Some(b), 0..=6) => {
                params.add(b.fd(), plane, offset, stride, hi, lo);
                "a dma-buf"
            }
            (_, 7 | 8) => match memfd(rng.below(1 << 21)) {
                Ok(fd) => {
                    params.add(fd.as_fd(), plane, offset, stride, hi, lo);
                    "a memfd"
                }
                Err(e) => return eprintln!("hostile-client: {e}"),
            },
            _ => match std::io::pipe() {
                Ok((read, _write)) => {
                    params.add(read.as_fd(), plane, offset, stride, hi, lo);
                    "a pipe"
                }
                Err(e) => return eprintln!("hostile-client: pipe: {e}"),
            },
        };
        self.log(format_args!(
            "zwp_linux_buffer_params_v1#{id}.add({kind}, plane {plane}, offset {offset}, stride {stride}, modifier {modifier:#x})"
        ));
    }

    fn params_create(&mut self, rng: &mut Rng) {
        let Some(i) = rng.index(self.params.len()) else {
            return self.create_params(rng);
        };
        let params = self.params[i].clone();
        let id = params.id().protocol_id();
        let (w, h) = if rng.chance(50) {
            rng.pick(&[(640, 480), (64, 64), (1, 1), (320, 240)])
        } else {
            (rng.dimension(), rng.dimension())
        };
        let format = rng.pick(&DMABUF_FORMATS);
        let flags = zwp_linux_buffer_params_v1::Flags::from_bits_retain(if rng.chance(10) {
            rng.u32() & 0xf
        } else {
            0
        });
        match rng.below(4) {
            0 => {
                params.create(w, h, format, flags);
                self.log(format_args!(
                    "zwp_linux_buffer_params_v1#{id}.create({w}x{h}, {format:#x}, {flags:?})"
                ));
            }
            1 => {
                params.destroy();
                self.params.swap_remove(i);
                self.log(format_args!("zwp_linux_buffer_params_v1#{id}.destroy"));
            }
            _ => {
                let buffer = params.create_immed(w, h, format, flags, &self.qh, ());
                let b = buffer.id().protocol_id();
                self.buffers.push(buffer);
                self.log(format_args!(
                    "zwp_linux_buffer_params_v1#{id}.create_immed(wl_buffer#{b}, {w}x{h}, {format:#x}, {flags:?})"
                ));
            }
        }
    }

    fn feedback(&mut self, rng: &mut Rng) {
        if self.dmabuf.version() < 4 {
            return;
        }
        if let (Some(i), true) = (rng.index(self.feedbacks.len()), rng.chance(40)) {
            let f = self.feedbacks.swap_remove(i);
            let id = f.id().protocol_id();
            f.destroy();
            return self.log(format_args!("zwp_linux_dmabuf_feedback_v1#{id}.destroy"));
        }
        let f = match self.pick_surface(rng) {
            Some(s) if rng.chance(70) => {
                let surface = self.surfaces[s].surface.clone();
                self.dmabuf.get_surface_feedback(&surface, &self.qh, ())
            }
            _ => self.dmabuf.get_default_feedback(&self.qh, ()),
        };
        let id = f.id().protocol_id();
        self.feedbacks.push(f);
        self.log(format_args!(
            "zwp_linux_dmabuf_v1.get_*_feedback(zwp_linux_dmabuf_feedback_v1#{id})"
        ));
    }

    fn get_xdg_surface(&mut self, rng: &mut Rng) {
        let Some(wm_base) = self.wm_base.clone() else {
            return self.wm_base_request(rng);
        };
        // Mostly a surface without a role yet; sometimes one that has one (role error), or
        // a plain surface that may have a buffer (error, or an unconfigured window).
        let candidates: Vec<usize> = (0..self.surfaces.len())
            .filter(|&i| {
                let s = &self.surfaces[i];
                !s.gone && (!s.plain || self.map) && (s.xdg.is_none() || rng.chance(10))
            })
            .collect();
        let Some(c) = rng.index(candidates.len()) else {
            return self.create_surface(rng);
        };
        let i = candidates[c];
        let key = self.surfaces[i].key;
        let surface = self.surfaces[i].surface.clone();
        let xdg = wm_base.get_xdg_surface(&surface, &self.qh, key);
        let (x, s) = (xdg.id().protocol_id(), surface.id().protocol_id());
        self.log(format_args!(
            "xdg_wm_base.get_xdg_surface(xdg_surface#{x}, wl_surface#{s})"
        ));
        let toplevel = rng
            .chance(80)
            .then(|| xdg.get_toplevel(&self.qh, ()))
            .inspect(|t| {
                let t = t.id().protocol_id();
                if self.trace {
                    eprintln!("hostile-client: xdg_surface#{x}.get_toplevel(xdg_toplevel#{t})");
                }
            });
        self.sent.requests += u64::from(toplevel.is_some());
        let s = &mut self.surfaces[i];
        s.xdg = Some(xdg);
        s.toplevel = toplevel;
        s.acked = false;
    }

    fn ack_configure(&mut self, rng: &mut Rng) {
        let Some(i) = rng.index(self.surfaces.len()) else {
            return;
        };
        let Some(xdg) = self.surfaces[i].xdg.clone() else {
            return self.get_xdg_surface(rng);
        };
        let key = self.surfaces[i].key;
        let serials = self.events.serials.get(&key).cloned().unwrap_or_default();
        let last = serials.last().copied();
        // The right serial only when no live buffer is pending (that commit would show the
        // window) — unless windows may be shown.
        let may_ack = self.map || !self.surfaces[i].pending_buffer;
        let (serial, right) = match (rng.below(5), last) {
            (0 | 1, Some(last)) if may_ack => (last, true),
            (2, Some(last)) => (last.wrapping_add(1 + rng.below(3) as u32), false),
            (3, _) => (rng.u32(), false),
            _ => (rng.pick(&[0, 1, u32::MAX]), false),
        };
        xdg.ack_configure(serial);
        if right {
            self.surfaces[i].acked = true;
        }
        let x = xdg.id().protocol_id();
        self.log(format_args!(
            "xdg_surface#{x}.ack_configure({serial}){}",
            if right {
                ""
            } else {
                " (not a serial it was sent)"
            }
        ));
    }

    fn toplevel_request(&mut self, rng: &mut Rng) {
        let with_toplevel: Vec<usize> = (0..self.surfaces.len())
            .filter(|&i| self.surfaces[i].toplevel.is_some())
            .collect();
        let Some(c) = rng.index(with_toplevel.len()) else {
            return self.get_xdg_surface(rng);
        };
        let t = self.surfaces[with_toplevel[c]]
            .toplevel
            .clone()
            .expect("filtered");
        let id = t.id().protocol_id();
        match rng.below(9) {
            0 | 1 => {
                let title = title(rng);
                self.log(format_args!(
                    "xdg_toplevel#{id}.set_title({} bytes)",
                    title.len()
                ));
                t.set_title(title);
            }
            2 => {
                let app_id = title(rng);
                self.log(format_args!(
                    "xdg_toplevel#{id}.set_app_id({} bytes)",
                    app_id.len()
                ));
                t.set_app_id(app_id);
            }
            3 => {
                // Negative sizes are a protocol error (invalid_size).
                let (w, h) = (rng.dimension(), rng.dimension());
                if rng.chance(50) {
                    t.set_min_size(w, h);
                } else {
                    t.set_max_size(w, h);
                }
                self.log(format_args!("xdg_toplevel#{id}.set_min/max_size({w}, {h})"));
            }
            4 => {
                // Itself, another toplevel (maybe a child of it: a loop) or none.
                let parent = rng
                    .index(with_toplevel.len())
                    .and_then(|p| self.surfaces[with_toplevel[p]].toplevel.clone());
                t.set_parent(parent.as_ref());
                self.log(format_args!("xdg_toplevel#{id}.set_parent"));
            }
            5 => {
                t.set_fullscreen(None);
                self.log(format_args!("xdg_toplevel#{id}.set_fullscreen"));
            }
            6 => {
                if rng.chance(50) {
                    t.set_maximized();
                } else {
                    t.unset_fullscreen();
                }
                self.log(format_args!(
                    "xdg_toplevel#{id}.set_maximized/unset_fullscreen"
                ));
            }
            7 => {
                t.set_minimized();
                self.log(format_args!("xdg_toplevel#{id}.set_minimized"));
            }
            _ => {
                let xdg = self.surfaces[with_toplevel[c]].xdg.clone();
                if let Some(xdg) = xdg {
                    let (x, y, w, h) = (
                        rng.dimension(),
                        rng.dimension(),
                        rng.dimension(),
                        rng.dimension(),
                    );
                    xdg.set_window_geometry(x, y, w, h);
                    self.log(format_args!(
                        "xdg_surface#{}.set_window_geometry({x}, {y}, {w}, {h})",
                        xdg.id().protocol_id()
                    ));
                }
            }
        }
    }

    fn destroy_xdg(&mut self, rng: &mut Rng) {
        let with_xdg: Vec<usize> = (0..self.surfaces.len())
            .filter(|&i| self.surfaces[i].xdg.is_some())
            .collect();
        let Some(c) = rng.index(with_xdg.len()) else {
            return self.get_xdg_surface(rng);
        };
        let s = &mut self.surfaces[with_xdg[c]];
        // The right order is toplevel first; sometimes the xdg_surface goes first.
        let xdg_first = rng.chance(25) || s.toplevel.is_none();
        let (id, what) = if xdg_first {
            let x = s.xdg.take().expect("filtered");
            x.destroy();
            (x.id().protocol_id(), "xdg_surface")
        } else {
            let t = s.toplevel.take().expect("checked");
            t.destroy();
            (t.id().protocol_id(), "xdg_toplevel")
        };
        self.log(format_args!("{what}#{id}.destroy"));
        if rng.chance(25) {
            // xdg_surface.ack_configure (opcode 4) or xdg_toplevel.set_maximized (opcode 9)
            // on the object just destroyed.
            if xdg_first {
                self.raw(
                    id,
                    4,
                    &[1],
                    "xdg_surface.ack_configure on the destroyed xdg_surface",
                );
            } else {
                self.raw(
                    id,
                    9,
                    &[],
                    "xdg_toplevel.set_maximized on the destroyed toplevel",
                );
            }
        }
    }

    fn wm_base_request(&mut self, rng: &mut Rng) {
        let Some(wm_base) = self.wm_base.clone() else {
            return;
        };
        if rng.chance(20) {
            // With xdg_surfaces alive, a protocol error (defunct_surfaces).
            wm_base.destroy();
            self.wm_base = None;
            self.log(format_args!("xdg_wm_base.destroy"));
        } else {
            let serial = match self.events.ping.take() {
                Some(s) if rng.chance(50) => s,
                _ => rng.u32(),
            };
            wm_base.pong(serial);
            self.log(format_args!("xdg_wm_base.pong({serial})"));
        }
    }

    /// Writes one request to the socket by hand: `opcode` on `object` with 32-bit `args`
    /// (ints, uints, object ids), after flushing what wayland-client queued so the order
    /// holds. The ids are those of objects destroyed in this same step, before any event was
    /// read, so wayland-client has not reused them (it frees an id on the compositor's
    /// delete_id event) and the message is well formed.
    fn raw(&mut self, object: u32, opcode: u16, args: &[u32], what: &str) {
        if self.conn.flush().is_err() {
            return;
        }
        let size = 8 + 4 * args.len();
        let mut bytes = Vec::with_capacity(size);
        bytes.extend(object.to_ne_bytes());
        bytes.extend((((size as u32) << 16) | u32::from(opcode)).to_ne_bytes());
        for a in args {
            bytes.extend(a.to_ne_bytes());
        }
        let backend = self.conn.backend();
        if rustix::io::write(backend.poll_fd(), &bytes).is_ok_and(|n| n == size) {
            self.sent.raw += 1;
            if self.trace {
                eprintln!("hostile-client: by hand: {what} (#{object})");
            }
        }
    }

    /// A round trip with a deadline: flushes, sends wl_display.sync and reads events until
    /// its callback comes, the connection ends or `timeout` passes.
    pub fn sync(&mut self, timeout: Duration) -> Result<(), End> {
        self.events.synced = false;
        self.conn.display().sync(&self.qh, RoundTrip);
        let deadline = Instant::now() + timeout;
        loop {
            if let Err(e) = self.queue.dispatch_pending(&mut self.events) {
                return Err(self.ended(e.to_string()));
            }
            if self.events.synced {
                return Ok(());
            }
            if let Err(e) = self.conn.flush() {
                if e.to_string().contains("would block") {
                    std::thread::sleep(Duration::from_millis(1));
                } else {
                    return Err(self.ended(e.to_string()));
                }
            }
            let Some(guard) = self.queue.prepare_read() else {
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Stalled);
            }
            let ready = {
                let fd = guard.connection_fd();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                rustix::event::poll(&mut fds, left.as_millis().min(1000) as i32)
                    .map(|n| n > 0)
                    .unwrap_or(false)
            };
            if ready {
                if let Err(e) = guard.read() {
                    if !matches!(&e, wayland_client::backend::WaylandError::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
                    {
                        return Err(self.ended(e.to_string()));
                    }
                }
            }
        }
    }

    /// How the connection ended, after an error from wayland-client.
    fn ended(&self, error: String) -> End {
        match self.conn.protocol_error() {
            Some(p) => End::ProtocolError(p.object_interface, p.code, p.message),
            None => End::Closed(error),
        }
    }
}

/// A title or app id: empty, ordinary, long, or with characters beyond ASCII.
fn title(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => String::new(),
        1 => "x".repeat(rng.range(1000, 4000) as usize),
        2 => "ünïcødé ☃ \u{202e}txet".into(),
        _ => format!("hostile {}", rng.u32()),
    }
}

/// A memfd of `size` bytes.
fn memfd(size: u64) -> Result<OwnedFd, String> {
    let fd = rustix::fs::memfd_create("hostile", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| format!("ftruncate: {e}"))?;
    Ok(fd)
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Events {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

delegate_noop!(Events: wl_compositor::WlCompositor);
delegate_noop!(Events: ignore wl_surface::WlSurface);
delegate_noop!(Events: ignore wl_shm::WlShm);
delegate_noop!(Events: wl_shm_pool::WlShmPool);
delegate_noop!(Events: wl_region::WlRegion);
delegate_noop!(Events: ignore wl_buffer::WlBuffer);
delegate_noop!(Events: ignore zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1);
delegate_noop!(Events: ignore zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1);
delegate_noop!(Events: ignore xdg_toplevel::XdgToplevel);

/// The user data of a round trip's wl_display.sync callback (frame callbacks have `()`).
pub struct RoundTrip;

delegate_noop!(Events: ignore wl_callback::WlCallback);

impl Dispatch<wl_callback::WlCallback, RoundTrip> for Events {
    fn event(
        state: &mut Self,
        _: &wl_callback::WlCallback,
        event: wl_callback::Event,
        _: &RoundTrip,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.synced = true;
        }
    }
}

impl Dispatch<zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1, ()> for Events {
    fn event(
        state: &mut Self,
        _: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
        event: zwp_linux_buffer_params_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_linux_buffer_params_v1::Event::Created { buffer } = event {
            state.created.push(buffer);
        }
    }

    event_created_child!(Events, zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1, [
        zwp_linux_buffer_params_v1::EVT_CREATED_OPCODE => (wl_buffer::WlBuffer, ()),
    ]);
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for Events {
    fn event(
        state: &mut Self,
        _: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            state.ping = Some(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, u64> for Events {
    fn event(
        state: &mut Self,
        _: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        key: &u64,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            state.serials.entry(*key).or_default().push(serial);
        }
    }
}
