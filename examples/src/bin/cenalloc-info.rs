//! `cenalloc-info`: what cenalloc sees on this system, and what it would decide.
//!
//! ```text
//! cenalloc-info [--json]
//! cenalloc-info --plan --device SEL:USAGE [--device SEL:USAGE ...] --format FOURCC --size WxH [--json]
//! ```
//!
//! Without `--plan` it lists the memory sources (heaps, udmabuf; unusable ones with the reason
//! and the fix) and every DRM and V4L2 device with its roles, whether it imports foreign
//! dma-bufs, whether it can export, and whether it needs contiguous memory. With `--plan` it
//! prints the plan for the selected devices without allocating. `SEL` is a device path, a DRM
//! driver name (`vkms`) or a V4L2 card or node name (`vivid-000`, `stateful-decoder`); `USAGE`
//! is a comma-separated list of scanout, cursor, render, texture, camera, decode, encode,
//! cpu-read, cpu-write, linear.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use cenalloc::{Allocator, BufferRequest, Fourcc, Importer, Usage};
use cenalloc_drm::{DrmDevice, NodeKind};
use cenalloc_v4l2::{Direction, V4l2Importer};
use serde::Serialize;

/// One device as the info tool reports it, whatever its API.
#[derive(Debug, Serialize)]
struct DeviceEntry {
    path: String,
    api: &'static str,
    driver: String,
    name: String,
    roles: Vec<String>,
    can_import: bool,
    can_export: bool,
    needs_contiguous: bool,
    /// Scanout formats (DRM) or capture formats (V4L2) with their modifiers.
    formats: Vec<String>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SourceEntry {
    name: String,
    path: Option<String>,
    kind: cenalloc::SourceKind,
    contiguous: bool,
    /// Highest physical address its pages may lie at, if known.
    max_address: Option<u64>,
    accessible: bool,
    explicit_only: bool,
    reason: Option<String>,
    fix: Option<String>,
}

#[derive(Debug, Serialize)]
struct Inventory {
    heaps: Vec<SourceEntry>,
    devices: Vec<DeviceEntry>,
}

fn sources(allocator: &Allocator) -> Vec<SourceEntry> {
    let mut out: Vec<SourceEntry> = allocator
        .sources()
        .iter()
        .map(|s| SourceEntry {
            name: s.name().to_owned(),
            path: s.path().map(|p| p.display().to_string()),
            kind: s.kind(),
            contiguous: s.properties().contiguous,
            max_address: s.properties().max_address,
            accessible: true,
            explicit_only: s.properties().explicit_only,
            reason: None,
            fix: None,
        })
        .collect();
    for u in allocator.unavailable() {
        out.push(SourceEntry {
            name: u
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: Some(u.path.display().to_string()),
            kind: cenalloc::SourceKind::Heap,
            contiguous: false,
            max_address: None,
            accessible: false,
            explicit_only: false,
            reason: Some(u.reason.clone()),
            fix: Some(u.fix.clone()),
        });
    }
    out
}

fn drm_entry(dev: &DrmDevice) -> DeviceEntry {
    let probe = dev.probe();
    let roles: Vec<String> = probe.roles().iter().map(|r| r.to_string()).collect();
    let usage = if probe.is_display() {
        Usage::SCANOUT
    } else {
        Usage::RENDER
    };
    let constraints = dev.constraints(&BufferRequest::image(64, 64, Fourcc::Xrgb8888, usage));
    let mut formats = Vec::new();
    for plane in probe.planes.iter().filter(|p| {
        matches!(
            p.kind,
            cenalloc_drm::PlaneKind::Primary | cenalloc_drm::PlaneKind::Overlay
        )
    }) {
        for f in &plane.raw_formats {
            let mods: Vec<String> = plane
                .modifiers_for(*f)
                .iter()
                .map(|m| m.to_string())
                .collect();
            let entry = format!(
                "{}:{}",
                cenalloc_drm::probe::fourcc_code_name(*f),
                mods.join("|")
            );
            if !formats.contains(&entry) {
                formats.push(entry);
            }
        }
    }
    let mut notes = Vec::new();
    if let cenalloc_drm::ImportTrial::Refused(why) = dev.import_trial() {
        notes.push(format!("trial import refused: {why}"));
    }
    DeviceEntry {
        path: dev
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        api: "drm",
        driver: dev.driver().to_owned(),
        name: dev.name().to_owned(),
        roles,
        can_import: dev.import_trial().accepted(),
        can_export: probe.caps.prime_export && probe.caps.dumb_buffer,
        needs_contiguous: constraints.as_ref().map(|c| c.contiguous).unwrap_or(false),
        formats,
        notes,
    }
}

fn v4l2_entry(r: &cenalloc_v4l2::DeviceReport) -> DeviceEntry {
    DeviceEntry {
        path: r.path.display().to_string(),
        api: "v4l2",
        driver: r.driver.clone(),
        name: r.name.clone(),
        roles: r
            .roles
            .iter()
            .map(|r| {
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{r:?}"))
            })
            .collect(),
        can_import: r.can_import,
        can_export: r.can_export,
        needs_contiguous: r.needs_contiguous,
        formats: r.capture_drm_formats(),
        notes: vec![format!("card {}", r.card)],
    }
}

fn inventory() -> Inventory {
    let allocator = Allocator::new();
    let mut devices: Vec<DeviceEntry> = cenalloc_drm::enumerate()
        .iter()
        .filter(|d| d.kind() == NodeKind::Card)
        .map(drm_entry)
        .collect();
    devices.extend(
        cenalloc_v4l2::probe_all()
            .iter()
            .filter(|r| !r.roles.is_empty())
            .map(v4l2_entry),
    );
    Inventory {
        heaps: sources(&allocator),
        devices,
    }
}

fn print_inventory(inv: &Inventory) {
    println!("memory sources:");
    for s in &inv.heaps {
        let state = if s.accessible {
            String::from("ok")
        } else {
            format!(
                "UNUSABLE: {} (fix: {})",
                s.reason.as_deref().unwrap_or("?"),
                s.fix.as_deref().unwrap_or("?")
            )
        };
        let below = s
            .max_address
            .map_or_else(|| "?".to_owned(), |a| format!("{a:#x}"));
        println!(
            "  {:<16} {:<22} {:<8} contiguous={:<5} up-to={:<12} {}{}",
            s.name,
            s.path.as_deref().unwrap_or("-"),
            format!("{:?}", s.kind).to_lowercase(),
            s.contiguous,
            below,
            state,
            if s.explicit_only {
                " (only on request)"
            } else {
                ""
            }
        );
    }
    println!("devices:");
    for d in &inv.devices {
        println!(
            "  {:<18} {:<5} {:<11} {:<20} roles={:<24} import={:<5} export={:<5} contiguous={}",
            d.path,
            d.api,
            d.driver,
            d.name,
            d.roles.join(","),
            d.can_import,
            d.can_export,
            d.needs_contiguous
        );
        if d.api == "drm" && !d.formats.is_empty() {
            println!("      scanout: {}", d.formats.join(" "));
        }
        for n in &d.notes {
            println!("      {n}");
        }
    }
}

fn parse_usage(s: &str) -> Result<Usage, String> {
    let mut usage = Usage::empty();
    for word in s.split(',') {
        usage |= match word {
            "scanout" => Usage::SCANOUT,
            "cursor" => Usage::CURSOR,
            "render" => Usage::RENDER,
            "texture" => Usage::TEXTURE,
            "camera" => Usage::CAMERA_WRITE,
            "decode" => Usage::VIDEO_DECODE,
            "encode" => Usage::VIDEO_ENCODE,
            "cpu-read" => Usage::CPU_READ,
            "cpu-write" => Usage::CPU_WRITE,
            "linear" => Usage::LINEAR,
            other => return Err(format!("unknown usage {other:?}")),
        };
    }
    Ok(usage)
}

/// Opens the device `sel` names for `usage` as an importer.
fn open_importer(sel: &str, usage: Usage) -> Result<Arc<dyn Importer>, String> {
    let wants_v4l2 =
        usage.intersects(Usage::CAMERA_WRITE | Usage::VIDEO_DECODE | Usage::VIDEO_ENCODE);
    if sel.starts_with("/dev/dri/") || (!wants_v4l2 && !sel.starts_with("/dev/")) {
        let dev = if Path::new(sel).is_absolute() {
            DrmDevice::open(sel).map_err(|e| e.to_string())?
        } else {
            // The primary node can do all a render node can (as root) and also owns dumb
            // buffers, which a device that must export (virtio-gpu) allocates with.
            cenalloc_drm::device::find(sel, NodeKind::Card)
                .or_else(|| cenalloc_drm::device::find(sel, NodeKind::Render))
                .ok_or_else(|| format!("no DRM device with driver {sel}"))?
        };
        return Ok(Arc::new(dev));
    }
    let path = if Path::new(sel).is_absolute() {
        Path::new(sel).to_path_buf()
    } else {
        v4l2_node_for(sel, usage)?
    };
    let dev = cenalloc_v4l2::Device::open(&path).map_err(|e| e.to_string())?;
    let dir = if usage.contains(Usage::VIDEO_ENCODE) {
        Direction::Output
    } else {
        Direction::Capture
    };
    Ok(Arc::new(V4l2Importer::new(Arc::new(dev), dir)))
}

/// The V4L2 node for a card or node name: a node named exactly `sel`, else the card's node
/// whose role fits `usage` (the video capture node of a camera card).
fn v4l2_node_for(sel: &str, usage: Usage) -> Result<std::path::PathBuf, String> {
    if let Ok(p) = cenalloc_v4l2::find_by_name(sel) {
        return Ok(p);
    }
    let wanted = if usage.contains(Usage::CAMERA_WRITE) {
        "-vid-cap"
    } else {
        ""
    };
    cenalloc_v4l2::list_devices()
        .into_iter()
        .find(|(_, name)| name.starts_with(sel) && name.ends_with(wanted))
        .map(|(p, _)| p)
        .ok_or_else(|| format!("no V4L2 node for {sel}"))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("size must be WxH")?;
    Ok((
        w.parse().map_err(|_| format!("bad width {w}"))?,
        h.parse().map_err(|_| format!("bad height {h}"))?,
    ))
}

fn parse_fourcc(s: &str) -> Result<Fourcc, String> {
    let bytes = s.as_bytes();
    if bytes.len() != 4 {
        return Err(format!("fourcc {s:?} must have four characters"));
    }
    let code = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Fourcc::try_from(code).map_err(|_| format!("unknown fourcc {s:?}"))
}

fn plan(args: &[String], json: bool) -> Result<(), String> {
    let mut selections = Vec::new();
    let mut fourcc = Fourcc::Xrgb8888;
    let mut size = (1920, 1080);
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .cloned()
                .ok_or(format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--device" => selections.push(value()?),
            "--format" => fourcc = parse_fourcc(&value()?)?,
            "--size" => size = parse_size(&value()?)?,
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    if selections.is_empty() {
        return Err("--plan needs at least one --device SEL:USAGE".into());
    }
    let mut importers = Vec::new();
    let mut usage = Usage::empty();
    for s in &selections {
        let (sel, u) = s
            .rsplit_once(':')
            .ok_or(format!("{s:?}: expected SEL:USAGE"))?;
        let u = parse_usage(u)?;
        usage |= u;
        importers.push(open_importer(sel, u)?);
    }
    let request = BufferRequest::image(size.0, size.1, fourcc, usage);
    let allocator = Allocator::new();
    let plan = allocator
        .plan(&request, &importers)
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "request: {}x{} {} usage {:?}",
        size.0, size.1, fourcc, usage
    );
    println!(
        "devices: {}",
        importers
            .iter()
            .map(|i| i.name().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "source:  {:?} {}{}",
        plan.source().kind,
        plan.source().name,
        plan.source()
            .path
            .as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default()
    );
    println!(
        "size:    {} bytes, modifier {}",
        plan.size(),
        plan.modifier()
    );
    for (n, p) in plan.layout().planes().iter().enumerate() {
        println!(
            "plane {n}: offset {} stride {} size {}",
            p.offset, p.stride, p.size
        );
    }
    println!("why:");
    for r in plan.reasons() {
        println!("  - {r}");
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let rest: Vec<String> = args
        .iter()
        .filter(|a| *a != "--json" && *a != "--plan")
        .cloned()
        .collect();
    let result = if args.iter().any(|a| a == "--plan") {
        plan(&rest, json)
    } else if !rest.is_empty() {
        Err(format!(
            "unknown arguments {rest:?}; see the module docs: cenalloc-info [--json] | --plan --device SEL:USAGE ... --format FOURCC --size WxH"
        ))
    } else {
        let inv = inventory();
        if json {
            serde_json::to_string_pretty(&inv)
                .map(|s| println!("{s}"))
                .map_err(|e| e.to_string())
        } else {
            print_inventory(&inv);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cenalloc-info: {e}");
            ExitCode::FAILURE
        }
    }
}
