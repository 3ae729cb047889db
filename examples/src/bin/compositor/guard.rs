//! Requests that smithay 0.7 turns into a panic of the whole compositor, checked before
//! smithay sees them (found by the hostile client, issue 26).
//!
//! smithay builds a `Size` from the client's numbers for wl_surface.damage, wl_region.add and
//! .subtract, xdg_toplevel.set_min_size and .set_max_size and xdg_surface.set_window_geometry;
//! `Size::new` asserts (`debug_assert!`) that both are non-negative, so in a debug build one
//! negative number from any client kills the compositor and every other client with it (in a
//! release build the negative size goes on into smithay's state). Here:
//! - wl_surface.damage and wl_region.add/.subtract with a negative width or height are
//!   ignored, as smithay itself does for wl_surface.damage_buffer (the protocol defines no
//!   error for them);
//! - xdg_toplevel.set_min_size/.set_max_size with a negative size, and
//!   xdg_surface.set_window_geometry with a size that is not positive, get the protocol
//!   error xdg-shell defines (`invalid_size`).
//!
//! And two holes in smithay's check of zwp_linux_buffer_params_v1.create/create_immed
//! (`DmabufParamsData::create_dmabuf`): a width or height below 1 gets its
//! `invalid_dimensions` error posted but the buffer is built anyway (`Size::new` panics on a
//! negative one), and `offset + stride` of a plane is summed in `u32`, which overflows (a
//! panic in a debug build) for an offset near 4 GiB. Here both get their protocol error
//! (`invalid_dimensions`, `out_of_bounds`) and smithay never sees the create.
//!
//! And wl_shm_pool.resize to a size below 1: smithay posts the error, then goes on to
//! `NonZeroUsize::try_from(size).unwrap()`, which panics in any build; here the error is
//! posted and smithay never sees the request.
//!
//! And the compositor's fd budget ([`crate::fd_budget`]): a buffer created while the budget is
//! spent is refused (`create`: the `failed` event; `create_immed`: the protocol error
//! `invalid_wl_buffer`, as the protocol says for a buffer that cannot be created), which
//! closes the fds its params carried.
//!
//! Every other request goes to smithay unchanged. These impls replace the ones
//! `delegate_compositor!`, `delegate_xdg_shell!` and `delegate_dmabuf!` would generate for
//! these six interfaces (handlers.rs delegates the rest).

use smithay::reexports::wayland_protocols::xdg::shell::server::{xdg_surface, xdg_toplevel};
use smithay::reexports::wayland_server::backend::ClientId;
use smithay::reexports::wayland_server::protocol::{wl_region, wl_shm, wl_shm_pool, wl_surface};
use smithay::reexports::wayland_server::{
    Client, DataInit, Dispatch, DisplayHandle, Resource as _,
};
use smithay::wayland::compositor::{CompositorState, RegionUserData, SurfaceUserData};
use smithay::wayland::dmabuf::{DmabufParamsData, DmabufState};
use smithay::wayland::shm::{ShmPoolUserData, ShmState};
use smithay::wayland::shell::xdg::{XdgShellState, XdgShellSurfaceUserData, XdgSurfaceUserData};
use smithay::reexports::wayland_protocols::wp::linux_dmabuf::zv1::server::zwp_linux_buffer_params_v1::{
    self as params_v1, ZwpLinuxBufferParamsV1,
};
use smithay::reexports::wayland_server::backend::ObjectId;

use crate::handlers::State;

impl Dispatch<wl_surface::WlSurface, SurfaceUserData> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        resource: &wl_surface::WlSurface,
        request: wl_surface::Request,
        data: &SurfaceUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let wl_surface::Request::Damage { width, height, .. } = request {
            if width < 0 || height < 0 {
                log::warn!("ignoring wl_surface.damage of negative size {width}x{height}");
                return;
            }
        }
        <CompositorState as Dispatch<wl_surface::WlSurface, SurfaceUserData, Self>>::request(
            state, client, resource, request, data, dh, data_init,
        )
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        resource: &wl_surface::WlSurface,
        data: &SurfaceUserData,
    ) {
        <CompositorState as Dispatch<wl_surface::WlSurface, SurfaceUserData, Self>>::destroyed(
            state, client, resource, data,
        )
    }
}

impl Dispatch<wl_region::WlRegion, RegionUserData> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        resource: &wl_region::WlRegion,
        request: wl_region::Request,
        data: &RegionUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let wl_region::Request::Add { width, height, .. }
        | wl_region::Request::Subtract { width, height, .. } = request
        {
            if width < 0 || height < 0 {
                log::warn!("ignoring a wl_region rectangle of negative size {width}x{height}");
                return;
            }
        }
        <CompositorState as Dispatch<wl_region::WlRegion, RegionUserData, Self>>::request(
            state, client, resource, request, data, dh, data_init,
        )
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        resource: &wl_region::WlRegion,
        data: &RegionUserData,
    ) {
        <CompositorState as Dispatch<wl_region::WlRegion, RegionUserData, Self>>::destroyed(
            state, client, resource, data,
        )
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, XdgShellSurfaceUserData> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        resource: &xdg_toplevel::XdgToplevel,
        request: xdg_toplevel::Request,
        data: &XdgShellSurfaceUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let xdg_toplevel::Request::SetMinSize { width, height }
        | xdg_toplevel::Request::SetMaxSize { width, height } = request
        {
            if width < 0 || height < 0 {
                resource.post_error(
                    xdg_toplevel::Error::InvalidSize,
                    format!("negative minimum or maximum size {width}x{height}"),
                );
                return;
            }
        }
        <XdgShellState as Dispatch<xdg_toplevel::XdgToplevel, XdgShellSurfaceUserData, Self>>::request(
            state, client, resource, request, data, dh, data_init,
        )
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        resource: &xdg_toplevel::XdgToplevel,
        data: &XdgShellSurfaceUserData,
    ) {
        <XdgShellState as Dispatch<xdg_toplevel::XdgToplevel, XdgShellSurfaceUserData, Self>>::destroyed(
            state, client, resource, data,
        )
    }
}

impl Dispatch<xdg_surface::XdgSurface, XdgSurfaceUserData> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        resource: &xdg_surface::XdgSurface,
        request: xdg_surface::Request,
        data: &XdgSurfaceUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let xdg_surface::Request::SetWindowGeometry { width, height, .. } = request {
            if width <= 0 || height <= 0 {
                resource.post_error(
                    xdg_surface::Error::InvalidSize,
                    format!("window geometry of size {width}x{height}"),
                );
                return;
            }
        }
        <XdgShellState as Dispatch<xdg_surface::XdgSurface, XdgSurfaceUserData, Self>>::request(
            state, client, resource, request, data, dh, data_init,
        )
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        resource: &xdg_surface::XdgSurface,
        data: &XdgSurfaceUserData,
    ) {
        <XdgShellState as Dispatch<xdg_surface::XdgSurface, XdgSurfaceUserData, Self>>::destroyed(
            state, client, resource, data,
        )
    }
}

thread_local! {
    /// Params objects that were given a plane whose `offset + stride` does not fit in 32
    /// bits (smithay keeps the planes to itself; the compositor is single-threaded).
    static OVERFLOWING_PLANES: std::cell::RefCell<std::collections::HashSet<ObjectId>> =
        Default::default();
}

impl Dispatch<ZwpLinuxBufferParamsV1, DmabufParamsData> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        resource: &ZwpLinuxBufferParamsV1,
        request: params_v1::Request,
        data: &DmabufParamsData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        match &request {
            params_v1::Request::Add { offset, stride, .. }
                if offset.checked_add(*stride).is_none() =>
            {
                OVERFLOWING_PLANES.with(|p| p.borrow_mut().insert(resource.id()));
            }
            params_v1::Request::Create { width, height, .. }
            | params_v1::Request::CreateImmed { width, height, .. } => {
                if let Some((open, limit)) = crate::fd_budget::exhausted() {
                    log::warn!(
                        "refusing a client's buffer: {open} fds open, limit {limit}, {} kept \
                         for the compositor",
                        crate::fd_budget::RESERVE
                    );
                    let why = format!(
                        "the compositor is out of file descriptors ({open} open, limit \
                         {limit}): buffer refused"
                    );
                    if matches!(request, params_v1::Request::Create { .. }) {
                        resource.failed();
                    } else {
                        resource.post_error(params_v1::Error::InvalidWlBuffer, why);
                    }
                    return;
                }
                if *width < 1 || *height < 1 {
                    resource.post_error(
                        params_v1::Error::InvalidDimensions,
                        format!("invalid size {width}x{height}"),
                    );
                    return;
                }
                if OVERFLOWING_PLANES.with(|p| p.borrow().contains(&resource.id())) {
                    resource.post_error(
                        params_v1::Error::OutOfBounds,
                        "a plane's offset + stride overflows 32 bits",
                    );
                    return;
                }
            }
            _ => {}
        }
        <DmabufState as Dispatch<ZwpLinuxBufferParamsV1, DmabufParamsData, Self>>::request(
            state, client, resource, request, data, dh, data_init,
        )
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        resource: &ZwpLinuxBufferParamsV1,
        data: &DmabufParamsData,
    ) {
        OVERFLOWING_PLANES.with(|p| p.borrow_mut().remove(&resource.id()));
        <DmabufState as Dispatch<ZwpLinuxBufferParamsV1, DmabufParamsData, Self>>::destroyed(
            state, client, resource, data,
        )
    }
}

impl Dispatch<wl_shm_pool::WlShmPool, ShmPoolUserData> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        resource: &wl_shm_pool::WlShmPool,
        request: wl_shm_pool::Request,
        data: &ShmPoolUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let wl_shm_pool::Request::Resize { size } = request {
            if size < 1 {
                resource.post_error(wl_shm::Error::InvalidFd, "invalid wl_shm_pool size");
                return;
            }
        }
        <ShmState as Dispatch<wl_shm_pool::WlShmPool, ShmPoolUserData, Self>>::request(
            state, client, resource, request, data, dh, data_init,
        )
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        resource: &wl_shm_pool::WlShmPool,
        data: &ShmPoolUserData,
    ) {
        <ShmState as Dispatch<wl_shm_pool::WlShmPool, ShmPoolUserData, Self>>::destroyed(
            state, client, resource, data,
        )
    }
}
