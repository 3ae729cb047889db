//! The devices of the neighbouring elements: the V4L2 producer upstream (the `device` property
//! of v4l2src or of a V4L2 decoder) and the display downstream (kmssink's open `fd`, else its
//! `driver-name`, else its `bus-id`). Elements without a device (capsfilter, queue, ...) are
//! walked through.

use gst::prelude::*;

/// How many elements the walk passes through before giving up.
const MAX_HOPS: usize = 16;

/// A V4L2 element upstream and the device node it drives.
#[derive(Debug, Clone)]
pub struct Producer {
    /// The element's name (`v4l2src0`).
    pub element: String,
    /// Its `device` property (`/dev/video0`).
    pub device: String,
    /// Whether it is a decoder (its class names "Decoder"): the buffers are its capture side.
    pub decoder: bool,
}

/// A display element downstream and how it names its DRM device.
#[derive(Debug, Clone)]
pub struct Display {
    /// The element's name (`kmssink0`).
    pub element: String,
    /// A DRM node path (from the element's open fd or its `bus-id`) or a DRM driver name
    /// (`driver-name`).
    pub device: String,
}

/// The element on the other side of `pad`, if linked.
fn peer_element(pad: &gst::Pad) -> Option<gst::Element> {
    pad.peer()?.parent_element()
}

fn string_property(element: &gst::Element, name: &str) -> Option<String> {
    element.find_property(name)?;
    element
        .property_value(name)
        .get::<Option<String>>()
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
}

/// The first element upstream of `sink` with a `device` property.
pub fn producer(sink: &gst::Pad) -> Option<Producer> {
    let mut element = peer_element(sink)?;
    for _ in 0..MAX_HOPS {
        if let Some(device) = string_property(&element, "device") {
            let class = element
                .factory()
                .and_then(|f| f.metadata(gst::ELEMENT_METADATA_KLASS).map(str::to_owned))
                .unwrap_or_default();
            return Some(Producer {
                element: element.name().to_string(),
                device,
                decoder: class.contains("Decoder"),
            });
        }
        element = peer_element(&element.static_pad("sink")?)?;
    }
    None
}

/// The first element downstream of `src` with a `driver-name` property (kmssink): the DRM node
/// behind its open `fd` if it has one, else its driver name. `Err` names an element that is a
/// display but does not say which device it uses.
pub fn display(src: &gst::Pad) -> Result<Option<Display>, String> {
    let Some(mut element) = peer_element(src) else {
        return Ok(None);
    };
    for _ in 0..MAX_HOPS {
        if element.find_property("driver-name").is_some() {
            let name = element.name().to_string();
            if let Some(path) = fd_path(&element) {
                return Ok(Some(Display {
                    element: name,
                    device: path,
                }));
            }
            if let Some(driver) = string_property(&element, "driver-name") {
                return Ok(Some(Display {
                    element: name,
                    device: driver,
                }));
            }
            if let Some(bus_id) = string_property(&element, "bus-id") {
                let dev = cenalloc_drm::device::find_by_bus_id(&bus_id)
                    .ok_or_else(|| format!("{name}'s bus-id {bus_id:?} names no DRM card"))?;
                let path = dev.path().map(|p| p.display().to_string());
                return Ok(Some(Display {
                    element: name,
                    device: path.unwrap_or_else(|| dev.driver().to_owned()),
                }));
            }
            return Err(format!(
                "cannot tell which DRM device {name} uses (it has no open fd, no driver-name \
                 and no bus-id): set one of them or cenalloc's downstream-device"
            ));
        }
        let Some(next) = element.static_pad("src").and_then(|p| peer_element(&p)) else {
            return Ok(None);
        };
        element = next;
    }
    Ok(None)
}

/// The DRM node behind kmssink's `fd` property (the fd it opened or was given), read from
/// `/proc/self/fd`.
fn fd_path(element: &gst::Element) -> Option<String> {
    element.find_property("fd")?;
    let fd = element.property_value("fd").get::<i32>().ok()?;
    if fd < 0 {
        return None;
    }
    let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let path = path.to_str()?;
    path.starts_with("/dev/dri/").then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Links the elements in a pipeline (not started: no device is opened); the pipeline is
    /// returned too, as dropping it would unlink them.
    fn chain(factories: &[(&str, &[(&str, &str)])]) -> (gst::Pipeline, Vec<gst::Element>) {
        gst::init().expect("GStreamer initialises");
        let pipeline = gst::Pipeline::new();
        let mut elements = Vec::new();
        for (factory, props) in factories {
            let mut builder = gst::ElementFactory::make(factory);
            for (k, v) in props.iter() {
                builder = builder.property_from_str(k, v);
            }
            let e = builder.build().unwrap_or_else(|_| {
                panic!(
                    "no GStreamer element {factory}: install gstreamer1.0-plugins-good and \
                     -bad (cargo xtask setup does)"
                )
            });
            pipeline.add(&e).expect("added");
            elements.push(e);
        }
        gst::Element::link_many(&elements).expect("linked");
        (pipeline, elements)
    }

    #[test]
    fn walks_through_capsfilter_to_v4l2src_and_to_kmssink() {
        let (_pipeline, e) = chain(&[
            ("v4l2src", &[("device", "/dev/video7")]),
            ("capsfilter", &[]),
            ("identity", &[]),
            ("queue", &[]),
            ("kmssink", &[("driver-name", "vkms")]),
        ]);
        let producer = producer(&e[2].static_pad("sink").unwrap()).expect("v4l2src found");
        assert_eq!(producer.device, "/dev/video7");
        assert!(!producer.decoder);
        let display = display(&e[2].static_pad("src").unwrap())
            .expect("no error")
            .expect("kmssink found");
        assert_eq!(display.device, "vkms");
    }

    #[test]
    fn kmssink_without_a_device_is_an_error_naming_it() {
        let (_pipeline, e) = chain(&[("identity", &[]), ("kmssink", &[])]);
        let err = display(&e[0].static_pad("src").unwrap()).unwrap_err();
        assert!(
            err.contains("kmssink") && err.contains("driver-name"),
            "{err}"
        );
    }

    #[test]
    fn a_bus_id_that_names_no_card_is_an_error_naming_it() {
        let (_pipeline, e) = chain(&[("identity", &[]), ("kmssink", &[("bus-id", "nowhere:0")])]);
        let err = display(&e[0].static_pad("src").unwrap()).unwrap_err();
        assert!(
            err.contains("kmssink") && err.contains("\"nowhere:0\" names no DRM card"),
            "{err}"
        );
    }
}
