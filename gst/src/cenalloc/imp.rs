//! The element's implementation: properties, device discovery and the ALLOCATION query.

use std::sync::{Arc, LazyLock, Mutex};

use cenalloc::{Allocator, BufferRequest, Importer, Usage};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::pool::{CenallocPool, PoolSetup};
use crate::{format, peers, CAT};

/// Buffers the pool allocates up front; upstream may raise it.
const MIN_BUFFERS: u32 = 2;

#[derive(Debug, Default, Clone)]
struct Settings {
    upstream_device: Option<String>,
    downstream_device: Option<String>,
}

/// One device taking part in the plan, and where it came from.
struct Participant {
    importer: Arc<dyn Importer>,
    usage: Usage,
    what: String,
}

#[derive(Default)]
pub struct Cenalloc {
    settings: Mutex<Settings>,
}

#[glib::object_subclass]
impl ObjectSubclass for Cenalloc {
    const NAME: &'static str = "GstCenalloc";
    type Type = super::Cenalloc;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for Cenalloc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("upstream-device")
                    .nick("Upstream device")
                    .blurb(
                        "The V4L2 producer (path, card or node name); default: the device \
                         of the V4L2 element upstream",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("downstream-device")
                    .nick("Downstream device")
                    .blurb(
                        "The display (DRM node path or driver name); default: the device of \
                         kmssink downstream",
                    )
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let value = value.get::<Option<String>>().ok().flatten();
        match pspec.name() {
            "upstream-device" => settings.upstream_device = value,
            "downstream-device" => settings.downstream_device = value,
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        match pspec.name() {
            "upstream-device" => settings.upstream_device.to_value(),
            "downstream-device" => settings.downstream_device.to_value(),
            _ => None::<String>.to_value(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_passthrough(true);
    }
}

impl GstObjectImpl for Cenalloc {}

impl ElementImpl for Cenalloc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "cenalloc dma-buf allocator",
                "Filter/Video",
                "Pass-through that gives upstream dma-bufs planned by cenalloc for both the \
                 V4L2 producer and the display",
                "cenalloc developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_empty_simple("video/x-raw");
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .filter_map(|dir| {
                    let name = if dir == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Cenalloc {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    /// Devices named by property are opened once here, so a name that matches nothing fails
    /// the state change at once with a message naming it.
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(spec) = &settings.upstream_device {
            cenalloc_v4l2::open_named(spec).map(Arc::new).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::NotFound,
                    ("cenalloc: upstream-device {spec:?}: {e}")
                )
            })?;
        }
        if let Some(spec) = &settings.downstream_device {
            cenalloc_drm::device::open_named(spec).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::NotFound,
                    ("cenalloc: downstream-device {spec:?}: {e}")
                )
            })?;
        }
        Ok(())
    }

    fn transform_ip(&self, _buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        Ok(gst::FlowSuccess::Ok)
    }

    fn transform_ip_passthrough(
        &self,
        _buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        Ok(gst::FlowSuccess::Ok)
    }

    fn propose_allocation(
        &self,
        _decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        let (caps, need_pool) = query.get_owned();
        let Some(caps) = caps else {
            return Err(gst::loggable_error!(CAT, "ALLOCATION query without caps"));
        };
        let info = gst_video::VideoInfo::from_caps(&caps).map_err(|e| {
            self.fail(
                gst::CoreError::Negotiation,
                format!("caps {caps} are not raw video: {e}"),
            )
        })?;
        let fourcc = format::fourcc(info.format()).ok_or_else(|| {
            self.fail(
                gst::CoreError::Negotiation,
                format!("video format {} has no DRM fourcc", info.format()),
            )
        })?;
        let participants = self.participants()?;
        let usage = participants.iter().fold(Usage::empty(), |u, p| u | p.usage);
        let importers: Vec<Arc<dyn Importer>> =
            participants.iter().map(|p| p.importer.clone()).collect();
        let described: Vec<&str> = participants.iter().map(|p| p.what.as_str()).collect();
        let request = BufferRequest::image(info.width(), info.height(), fourcc, usage);
        let allocator = Allocator::new();
        let plan = allocator.plan(&request, &importers).map_err(|e| {
            self.fail(
                gst::ResourceError::Settings,
                format!("no buffer suits {}: {e}", described.join(" and ")),
            )
        })?;
        self.report(&plan, &described, &caps);

        if need_pool {
            let size = u32::try_from(plan.size())
                .map_err(|_| gst::loggable_error!(CAT, "buffer size {} too large", plan.size()))?;
            let pool = CenallocPool::new(PoolSetup {
                allocator,
                plan,
                info,
            });
            let mut config = pool.config();
            config.set_params(Some(&caps), size, MIN_BUFFERS, 0);
            config.add_option("GstBufferPoolOptionVideoMeta");
            pool.set_config(config)
                .map_err(|e| gst::loggable_error!(CAT, "pool refused its config: {e}"))?;
            query.add_allocation_pool(Some(&pool), size, MIN_BUFFERS, 0);
        }
        query.add_allocation_meta::<gst_video::VideoMeta>(None);
        Ok(())
    }
}

impl Cenalloc {
    /// Posts an error naming what failed and returns it for the log.
    fn fail<T: gst::MessageErrorDomain>(&self, kind: T, text: String) -> gst::LoggableError {
        self.post_error_message(gst::error_msg!(kind, ("cenalloc: {text}")));
        gst::loggable_error!(CAT, "{text}")
    }

    /// The producer upstream and the display downstream, from the properties or the
    /// neighbouring elements, opened as cenalloc importers.
    fn participants(&self) -> Result<Vec<Participant>, gst::LoggableError> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let obj = self.obj();
        let mut participants = Vec::new();

        let found = obj.static_pad("sink").and_then(|p| peers::producer(&p));
        let upstream = match (&settings.upstream_device, &found) {
            (Some(spec), _) => Some((spec.clone(), "upstream-device".to_owned())),
            (None, Some(p)) => Some((p.device.clone(), format!("{}'s device", p.element))),
            (None, None) => None,
        };
        if let Some((spec, origin)) = upstream {
            let dev = cenalloc_v4l2::open_named(&spec)
                .map(Arc::new)
                .map_err(|e| {
                    self.fail(
                        gst::ResourceError::NotFound,
                        format!("{origin} {spec:?}: {e}"),
                    )
                })?;
            let decoder = found.as_ref().map(|p| p.decoder).unwrap_or(false)
                || dev.name().contains("decoder");
            let usage = if decoder {
                Usage::VIDEO_DECODE
            } else {
                Usage::CAMERA_WRITE
            };
            let what = format!("{} ({})", dev.name(), dev.path().display());
            participants.push(Participant {
                importer: Arc::new(cenalloc_v4l2::V4l2Importer::new(
                    dev,
                    cenalloc_v4l2::Direction::Capture,
                )),
                usage,
                what,
            });
        } else {
            gst::warning!(
                CAT,
                imp = self,
                "no V4L2 producer upstream and no upstream-device"
            );
        }

        let downstream = match &settings.downstream_device {
            Some(spec) => Some((spec.clone(), "downstream-device".to_owned())),
            None => obj
                .static_pad("src")
                .map(|p| peers::display(&p))
                .transpose()
                .map_err(|e| self.fail(gst::ResourceError::NotFound, e))?
                .flatten()
                .map(|d| (d.device, format!("{}'s device", d.element))),
        };
        if let Some((spec, origin)) = downstream {
            let dev = cenalloc_drm::device::open_named(&spec).map_err(|e| {
                self.fail(
                    gst::ResourceError::NotFound,
                    format!("{origin} {spec:?}: {e}"),
                )
            })?;
            let what = dev.name().to_owned();
            participants.push(Participant {
                importer: Arc::new(dev),
                usage: Usage::SCANOUT,
                what,
            });
        } else {
            gst::warning!(
                CAT,
                imp = self,
                "no display downstream and no downstream-device"
            );
        }

        if participants.is_empty() {
            return Err(self.fail(
                gst::ResourceError::NotFound,
                "found no device on either side: set upstream-device or downstream-device"
                    .to_owned(),
            ));
        }
        Ok(participants)
    }

    /// Logs the plan's reasons at INFO and posts them as the element message `cenalloc-plan`.
    fn report(&self, plan: &cenalloc::Plan, devices: &[&str], caps: &gst::Caps) {
        let source = plan.source();
        gst::info!(
            CAT,
            imp = self,
            "plan for {caps}: source {} ({:?}), {} bytes per buffer, modifier {}, devices {}",
            source.name,
            source.kind,
            plan.size(),
            plan.modifier(),
            devices.join(", ")
        );
        for reason in plan.reasons() {
            gst::info!(CAT, imp = self, "  - {reason}");
        }
        let structure = gst::Structure::builder("cenalloc-plan")
            .field("source", source.name.as_str())
            .field("source-kind", format!("{:?}", source.kind))
            .field("size", plan.size())
            .field("modifier", plan.modifier().to_string())
            .field("devices", devices.join(", "))
            .field(
                "reasons",
                gst::Array::new(plan.reasons().iter().map(|r| r.to_send_value())),
            )
            .build();
        let obj = self.obj();
        let message = gst::message::Element::builder(structure).src(&*obj).build();
        if obj.post_message(message).is_err() {
            gst::debug!(CAT, imp = self, "no bus to post the plan on");
        }
    }
}
