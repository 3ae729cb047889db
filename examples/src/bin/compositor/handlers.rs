//! Compositor state: Wayland protocol handlers (compositor, xdg-shell, linux-dmabuf), the
//! render/present loop and the per-frame zero-copy checks.

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use cenalloc::smithay::CenallocAllocator;
use drm::control::{plane, Device as _};
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::Buffer as _;
use smithay::backend::drm::compositor::DrmCompositor;
use smithay::backend::drm::DrmDeviceFd;
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::utils::on_commit_buffer_handler;
use smithay::backend::renderer::ImportDma;
use smithay::input::{SeatHandler, SeatState};
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::reexports::wayland_server::backend::{ClientData, ClientId, DisconnectReason};
use smithay::reexports::wayland_server::protocol::{
    wl_buffer::WlBuffer, wl_seat, wl_surface::WlSurface,
};
use smithay::reexports::wayland_server::{Client, Display, DisplayHandle};
use smithay::utils::Serial;
use smithay::wayland::buffer::BufferHandler;
use smithay::wayland::compositor::{
    with_states, with_surface_tree_downward, CompositorClientState, CompositorHandler,
    CompositorState, SurfaceAttributes, TraversalAction,
};
use smithay::wayland::dmabuf::{
    DmabufFeedback, DmabufGlobal, DmabufHandler, DmabufState, ImportNotifier,
};
use smithay::wayland::shell::xdg::{
    PopupSurface, PositionerState, ToplevelSurface, XdgShellHandler, XdgShellState,
    XdgToplevelSurfaceData,
};
use smithay::{delegate_compositor, delegate_dmabuf, delegate_seat, delegate_xdg_shell};

use crate::exporter::{CenallocExporter, FramebufferRegistry};
use crate::verify::{self, Writeback};
use crate::Expect;

/// What a queued frame showed, checked when it reaches the screen.
#[derive(Debug)]
pub struct FrameInfo {
    /// DrmCompositor put the client's buffer on the primary plane itself.
    direct: bool,
    /// The client's buffer in this frame.
    dmabuf: Option<Dmabuf>,
}

type Compositor = DrmCompositor<CenallocAllocator, CenallocExporter, FrameInfo, DrmDeviceFd>;

/// Counts of the verification.
#[derive(Debug, Default)]
struct Tally {
    checked: u32,
    zero_copy: u32,
    composited: u32,
    /// Composited frames that carried the modeset of taking the display back after a pause
    /// (smithay composes that frame; scan-out of the client's buffer resumes with the next).
    retaken: u32,
}

/// A frame that reached the screen as the seat took the display away cannot be verified
/// (capturing it needs DRM master); a later frame takes its place.
fn unverifiable_frame() {
    println!("frame shown as the session paused: not verified (not DRM master)");
}

/// Everything the compositor keeps.
pub struct State {
    /// The Wayland display (taken out while it dispatches into the state).
    pub display: Option<Display<State>>,
    compositor_state: CompositorState,
    xdg_shell_state: XdgShellState,
    dmabuf_state: DmabufState,
    seat_state: SeatState<State>,
    _dmabuf_global: DmabufGlobal,
    renderer: PixmanRenderer,
    compositor: Compositor,
    drm: DrmDeviceFd,
    primary_plane: plane::Handle,
    registry: FramebufferRegistry,
    size: (i32, i32),
    /// Fullscreen windows, oldest first (the newest is in front).
    toplevels: Vec<ToplevelSurface>,
    render_needed: bool,
    flip_pending: bool,
    /// The seat paused the session: the display is not ours, nothing is presented and no
    /// frame callback is sent until it is activated again.
    paused: bool,
    /// The display was just taken back: the next verified frame carries the modeset.
    retaking: bool,
    writeback: Option<Writeback>,
    verify: Option<u32>,
    expect: Expect,
    tally: Tally,
    start: Instant,
    /// Set when the compositor is done.
    pub exit_code: Option<ExitCode>,
}

impl State {
    /// Creates the globals and the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dh: &DisplayHandle,
        feedback: &DmabufFeedback,
        renderer: PixmanRenderer,
        compositor: Compositor,
        drm: DrmDeviceFd,
        primary_plane: plane::Handle,
        registry: FramebufferRegistry,
        size: (i32, i32),
        writeback: Option<Writeback>,
        verify: Option<u32>,
        expect: Expect,
    ) -> State {
        let compositor_state = CompositorState::new::<State>(dh);
        let xdg_shell_state = XdgShellState::new::<State>(dh);
        let mut dmabuf_state = DmabufState::new();
        let dmabuf_global = dmabuf_state.create_global_with_default_feedback::<State>(dh, feedback);
        State {
            display: None,
            compositor_state,
            xdg_shell_state,
            dmabuf_state,
            seat_state: SeatState::new(),
            _dmabuf_global: dmabuf_global,
            renderer,
            compositor,
            drm,
            primary_plane,
            registry,
            size,
            toplevels: Vec::new(),
            render_needed: true,
            flip_pending: false,
            paused: false,
            retaking: false,
            writeback,
            verify,
            expect,
            tally: Tally::default(),
            start: Instant::now(),
            exit_code: None,
        }
    }

    /// Accepts a client connection.
    pub fn add_client(&mut self, stream: UnixStream) {
        if let Some(display) = self.display.as_mut() {
            if let Err(e) = display
                .handle()
                .insert_client(stream, Arc::new(ClientState::default()))
            {
                log::error!("cannot add a client: {e}");
            }
        }
    }

    /// Dispatches client requests.
    pub fn dispatch_clients(&mut self) {
        if let Some(mut display) = self.display.take() {
            if let Err(e) = display.dispatch_clients(self) {
                log::error!("dispatching clients: {e}");
            }
            self.display = Some(display);
        }
    }

    /// Sends queued events to clients.
    pub fn flush_clients(&mut self) {
        if let Some(display) = self.display.as_mut() {
            let _ = display.flush_clients();
        }
    }

    /// Renders and queues a frame if a client committed and no flip is pending.
    pub fn render_if_needed(&mut self) {
        if !self.render_needed || self.flip_pending || self.paused {
            return;
        }
        self.render_needed = false;
        // Front to back: the newest window first.
        let mut elements = Vec::new();
        for t in self.toplevels.iter().rev() {
            elements.extend(crate::surface_elements(&mut self.renderer, t.wl_surface()));
        }
        let dmabuf = elements
            .first()
            .and_then(|e| crate::element_dmabuf(&mut self.renderer, e));
        let direct = match self.compositor.render_frame(
            &mut self.renderer,
            &elements,
            [0.0, 0.0, 0.0, 1.0],
            crate::FRAME_FLAGS,
        ) {
            Ok(result) => {
                if result.is_empty {
                    self.send_frame_callbacks();
                    return;
                }
                crate::primary_assignment(&result.primary_element)
            }
            Err(e) => {
                log::error!("render_frame: {e}");
                self.send_frame_callbacks();
                return;
            }
        };
        match self.compositor.queue_frame(FrameInfo { direct, dmabuf }) {
            Ok(()) => self.flip_pending = true,
            Err(e) => {
                log::error!("queue_frame: {e}");
                self.send_frame_callbacks();
            }
        }
    }

    /// A queued frame reached the screen.
    pub fn vblank(&mut self) {
        self.flip_pending = false;
        match self.compositor.frame_submitted() {
            Ok(Some(_)) if self.paused => unverifiable_frame(),
            Ok(Some(info)) => self.check_frame(info),
            Ok(None) => {}
            Err(e) => log::error!("frame_submitted: {e}"),
        }
        self.send_frame_callbacks();
    }

    fn send_frame_callbacks(&mut self) {
        let time = self.start.elapsed().as_millis() as u32;
        for t in &self.toplevels {
            with_surface_tree_downward(
                t.wl_surface(),
                (),
                |_, _, _| TraversalAction::DoChildren(()),
                |_, states, _| {
                    let mut cached = states.cached_state.get::<SurfaceAttributes>();
                    for callback in cached.current().frame_callbacks.drain(..) {
                        callback.done(time);
                    }
                },
                |_, _, _| true,
            );
        }
    }

    /// The three checks on one presented frame, in verify mode.
    fn check_frame(&mut self, info: FrameInfo) {
        let Some(total) = self.verify else {
            return;
        };
        let Some(dmabuf) = info.dmabuf else {
            return;
        };
        if self.tally.checked >= total {
            return;
        }
        self.tally.checked += 1;
        let n = self.tally.checked;
        let retaking = std::mem::take(&mut self.retaking);
        let plane = match (info.direct, retaking) {
            (true, _) => "client buffer on the primary plane",
            (false, false) => "composited into the swapchain",
            (false, true) => "composited into the swapchain (the modeset taking the display back)",
        };
        let backing = if info.direct {
            let fb_handles = self
                .drm
                .get_plane(self.primary_plane)
                .ok()
                .and_then(|p| p.framebuffer())
                .and_then(|fb| self.registry.lock().ok()?.get(&u32::from(fb)).cloned())
                .unwrap_or_default();
            verify::check_plane_backing(&self.drm, self.primary_plane, &dmabuf, &fb_handles)
        } else {
            // Composited: the plane must show a swapchain buffer, not the client's dma-buf.
            match (
                verify::plane_backing(&self.drm, self.primary_plane),
                verify::dmabuf_inode(&dmabuf),
            ) {
                (Ok((fb, fb_ino)), Ok(client_ino)) if fb_ino != client_ino => Ok(format!(
                    "plane shows swapchain FB {} (dma-buf inode {fb_ino}), not the client's ({client_ino})",
                    u32::from(fb)
                )),
                (Ok((fb, _)), Ok(_)) => Err(format!(
                    "inconsistent: FB {} on the plane is the client's dma-buf",
                    u32::from(fb)
                )),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        };
        let pixels = match (self.writeback.as_mut(), verify::client_rgb(&dmabuf)) {
            (Some(wb), Ok((client, frame))) => match wb.capture(&self.drm) {
                Ok(Some(capture)) => {
                    let (diff, first) = verify::compare(&capture, &client);
                    Ok((frame, diff, first))
                }
                Ok(None) => {
                    unverifiable_frame();
                    self.tally.checked -= 1;
                    self.retaking = retaking;
                    return;
                }
                Err(e) => Err(e),
            },
            (None, _) => Err("no writeback connector".to_owned()),
            (_, Err(e)) => Err(format!("cannot read the client's pixels: {e}")),
        };
        let pixels_ok = matches!(pixels, Ok((_, 0, _)));
        let pixel_text = match &pixels {
            Ok((frame, 0, _)) => format!("writeback == client frame {frame}, bit-exact"),
            Ok((frame, diff, first)) => {
                let first = first
                    .map(|m| {
                        format!(
                            "pixel {}: display {:?}, client {:?}",
                            m.index, m.got, m.want
                        )
                    })
                    .unwrap_or_default();
                format!("writeback differs from client frame {frame} in {diff} pixels ({first})")
            }
            Err(e) => e.clone(),
        };
        let backing_text = match &backing {
            Ok(t) => t.clone(),
            Err(e) => e.clone(),
        };
        println!("frame {n}/{total}: {plane}; {backing_text}; {pixel_text}");
        if info.direct && backing.is_ok() && pixels_ok {
            self.tally.zero_copy += 1;
        } else if !info.direct && backing.is_ok() && pixels_ok {
            if retaking {
                self.tally.retaken += 1;
            } else {
                self.tally.composited += 1;
            }
        }
    }

    /// The seat took the display away: nothing is rendered, and clients get no frame
    /// callbacks (so they wait, as for a hidden window), until it comes back.
    #[cfg(feature = "libseat")]
    pub fn session_paused(&mut self) {
        self.paused = true;
    }

    /// The seat gave the display back: what DrmCompositor knew of the hardware is stale, so
    /// it is reset and the next frame drawn in full.
    #[cfg(feature = "libseat")]
    pub fn session_activated(&mut self) {
        if let Err(e) = self.compositor.reset_state() {
            log::error!("resetting the DRM compositor's state: {e}");
        }
        self.paused = false;
        self.retaking = true;
        self.flip_pending = false;
        self.render_needed = true;
    }

    /// Ends the run once the main client exited: prints the verdict and sets the exit code.
    pub fn finish(&mut self, failed_clients: u32) {
        let mut ok = failed_clients == 0;
        if failed_clients > 0 {
            println!("{failed_clients} client(s) failed");
        }
        if let Some(total) = self.verify {
            let t = &self.tally;
            println!("{}/{total} frames zero-copy", t.zero_copy);
            println!("{}/{total} frames composited", t.composited);
            if t.retaken > 0 {
                println!(
                    "{}/{total} frames composited while taking the display back",
                    t.retaken
                );
            }
            ok &= match self.expect {
                Expect::ZeroCopy => t.zero_copy + t.retaken == total,
                Expect::Composited => t.composited + t.retaken == total,
            };
        }
        self.exit_code = Some(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    /// Rejects malformed client buffers with the linux-dmabuf protocol error; returns `None` if
    /// the buffer was rejected.
    fn validate(&mut self, dmabuf: &Dmabuf) -> Result<(), (&'static str, String)> {
        let code = dmabuf.format().code;
        if let Some(info) = cenalloc::format::FormatInfo::of(code) {
            if dmabuf.num_planes() != info.planes.len() {
                return Err((
                    "incomplete",
                    format!(
                        "{code:?} needs {} planes, the client sent {}",
                        info.planes.len(),
                        dmabuf.num_planes()
                    ),
                ));
            }
            for (i, (stride, geometry)) in dmabuf.strides().zip(info.planes).enumerate() {
                let min = geometry.min_row_bytes(dmabuf.width()).unwrap_or(u64::MAX);
                if u64::from(stride) < min {
                    return Err((
                        "failed",
                        format!("plane {i}: stride {stride} is below the {min} bytes a row needs"),
                    ));
                }
            }
        }
        for (i, fd) in dmabuf.handles().enumerate() {
            if let Err(e) =
                cenalloc::buffer::check_dmabuf(fd, &format!("plane {i} of a client buffer"))
            {
                return Err(("failed", e.to_string()));
            }
        }
        Ok(())
    }
}

/// Per-client data.
#[derive(Default)]
struct ClientState {
    compositor: CompositorClientState,
}

impl ClientData for ClientState {
    fn initialized(&self, _: ClientId) {}
    fn disconnected(&self, id: ClientId, reason: DisconnectReason) {
        log::info!("client {id:?} disconnected: {reason:?}");
    }
}

impl CompositorHandler for State {
    fn compositor_state(&mut self) -> &mut CompositorState {
        &mut self.compositor_state
    }

    fn client_compositor_state<'a>(&self, client: &'a Client) -> &'a CompositorClientState {
        &client
            .get_data::<ClientState>()
            .expect("every client is inserted with ClientState")
            .compositor
    }

    fn commit(&mut self, surface: &WlSurface) {
        on_commit_buffer_handler::<Self>(surface);
        let Some(toplevel) = self.toplevels.iter().find(|t| t.wl_surface() == surface) else {
            return;
        };
        let initial_sent = with_states(surface, |states| {
            states
                .data_map
                .get::<XdgToplevelSurfaceData>()
                .and_then(|d| d.lock().ok().map(|d| d.initial_configure_sent))
                .unwrap_or(true)
        });
        if initial_sent {
            self.render_needed = true;
        } else {
            toplevel.send_configure();
        }
    }
}

impl BufferHandler for State {
    fn buffer_destroyed(&mut self, _buffer: &WlBuffer) {}
}

impl XdgShellHandler for State {
    fn xdg_shell_state(&mut self) -> &mut XdgShellState {
        &mut self.xdg_shell_state
    }

    fn new_toplevel(&mut self, surface: ToplevelSurface) {
        let size = self.size;
        surface.with_pending_state(|s| {
            s.size = Some(size.into());
            s.states.set(xdg_toplevel::State::Fullscreen);
        });
        self.toplevels.push(surface);
    }

    fn toplevel_destroyed(&mut self, surface: ToplevelSurface) {
        self.toplevels.retain(|t| *t != surface);
        self.render_needed = true;
    }

    fn new_popup(&mut self, _surface: PopupSurface, _positioner: PositionerState) {}

    fn grab(&mut self, _surface: PopupSurface, _seat: wl_seat::WlSeat, _serial: Serial) {}

    fn reposition_request(
        &mut self,
        _surface: PopupSurface,
        _positioner: PositionerState,
        _token: u32,
    ) {
    }
}

impl DmabufHandler for State {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.dmabuf_state
    }

    fn dmabuf_imported(
        &mut self,
        _global: &DmabufGlobal,
        dmabuf: Dmabuf,
        notifier: ImportNotifier,
    ) {
        if let Err((kind, why)) = self.validate(&dmabuf) {
            log::warn!("rejecting a client dma-buf: {why}");
            match kind {
                "incomplete" => notifier.incomplete(),
                _ => notifier.failed(),
            }
            return;
        }
        if let Err(e) = self.renderer.import_dmabuf(&dmabuf, None) {
            log::warn!(
                "pixman cannot import the client's {:?}: {e}",
                dmabuf.format()
            );
            notifier.failed();
            return;
        }
        let _ = notifier.successful::<State>();
    }
}

impl SeatHandler for State {
    type KeyboardFocus = WlSurface;
    type PointerFocus = WlSurface;
    type TouchFocus = WlSurface;

    fn seat_state(&mut self) -> &mut SeatState<State> {
        &mut self.seat_state
    }
}

delegate_compositor!(State);
delegate_seat!(State);
delegate_xdg_shell!(State);
delegate_dmabuf!(State);
