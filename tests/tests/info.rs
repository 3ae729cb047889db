//! `cenalloc-info` in the guest: the inventory names every device the rig has with the keys
//! tools rely on, and `--plan --json` gives the decision cenalloc would make.

use std::process::Command;

use serde_json::Value;

fn info(args: &[&str]) -> Value {
    let out = Command::new(cenalloc_vmtests::program("cenalloc-info"))
        .args(args)
        .output()
        .expect("run cenalloc-info");
    assert!(
        out.status.success(),
        "cenalloc-info {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cenalloc-info --json prints JSON")
}

fn device<'a>(inv: &'a Value, key: &str, value: &str) -> &'a Value {
    inv["devices"]
        .as_array()
        .expect("devices[]")
        .iter()
        .find(|d| d[key] == value)
        .unwrap_or_else(|| panic!("no device with {key} = {value} in {inv:#}"))
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn inventory_lists_heaps_and_devices_with_their_roles() {
    let inv = info(&["--json"]);
    let heaps: Vec<&str> = inv["heaps"]
        .as_array()
        .expect("heaps[]")
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    for h in ["system", "reserved", "udmabuf"] {
        assert!(heaps.contains(&h), "heap {h} missing from {heaps:?}");
    }
    for d in inv["devices"].as_array().unwrap() {
        for key in ["path", "driver", "can_import", "needs_contiguous"] {
            assert!(!d[key].is_null(), "device without {key}: {d}");
        }
    }
    let vkms = device(&inv, "driver", "vkms");
    assert_eq!(vkms["can_import"], true);
    assert!(vkms["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "scanout"));
    let virtio = device(&inv, "driver", "virtio_gpu");
    assert_eq!(
        virtio["can_import"], false,
        "virtio-gpu without 3D refuses foreign dma-bufs"
    );
    assert_eq!(virtio["can_export"], true);
    assert_eq!(
        device(&inv, "name", "vivid-000-vid-cap")["needs_contiguous"],
        true
    );
    assert_eq!(
        device(&inv, "name", "vivid-001-vid-cap")["needs_contiguous"],
        false
    );
    assert!(device(&inv, "name", "stateful-decoder")["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "decoder"));
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn plan_json_names_source_layout_and_reasons() {
    let cases = [
        (vec!["vkms:scanout"], "device", "vkms"),
        (vec!["vkms:scanout,cpu-write"], "heap", "system"),
        (vec!["vkms:scanout", "vivid-000:camera"], "heap", "reserved"),
        (vec!["vkms:scanout", "vivid-001:camera"], "heap", "system"),
        (
            vec!["vkms:scanout", "virtio_gpu:render"],
            "device",
            "virtio_gpu",
        ),
    ];
    for (devices, kind, name) in cases {
        let mut args = vec!["--plan", "--json", "--format", "XR24", "--size", "640x480"];
        for d in &devices {
            args.extend(["--device", d]);
        }
        let plan = info(&args);
        assert_eq!(plan["source"]["kind"], kind, "{devices:?}: {plan:#}");
        assert!(
            plan["source"]["name"].as_str().unwrap().starts_with(name),
            "{devices:?}: {plan:#}"
        );
        let planes = plan["layout"]["planes"]
            .as_array()
            .expect("layout.planes[]");
        assert_eq!(planes.len(), 1);
        assert!(planes[0]["stride"].as_u64().unwrap() >= 640 * 4);
        assert!(!planes[0]["offset"].is_null());
        assert!(plan["size"].as_u64().unwrap() >= 640 * 480 * 4);
        assert!(!plan["modifier"].is_null());
        assert!(!plan["reasons"].as_array().unwrap().is_empty());
    }
}
