//! The command-line options the pipeline programs share.

use std::path::PathBuf;

/// Parsed options; each program uses the ones it documents.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--camera PATH|CARD`: a V4L2 node path or a vivid-style card name.
    pub camera: String,
    /// `--display PATH|DRIVER`: a DRM node path or a driver name.
    pub display: String,
    /// `--frames N`.
    pub frames: u32,
    /// `--buffers N`.
    pub buffers: u32,
    /// `--size WxH`.
    pub size: (u32, u32),
    /// `--resize WxH`: the decoded stream changes to this size halfway through.
    pub resize: Option<(u32, u32)>,
    /// `--verify`.
    pub verify: bool,
    /// `--snapshots DIR`.
    pub snapshots: Option<PathBuf>,
    /// `--stop-camera-after N`: stop the producer's queue after N frames, as if the camera
    /// went away (to exercise the teardown path).
    pub stop_camera_after: Option<u32>,
    /// `--out DIR` (benchmark results).
    pub out: Option<PathBuf>,
    /// `--runs N` (benchmark repetitions).
    pub runs: u32,
    /// `--fps N`: the camera's frame rate (VIDIOC_S_PARM); the driver's default otherwise.
    pub fps: Option<u32>,
    /// `--stateless`: decode with the stateless decoder (request API).
    pub stateless: bool,
    /// `--via PATH|NAME`: a V4L2 memory-to-memory converter between camera and display.
    pub via: Option<String>,
    /// `--camera-format FOURCC` (with `--via`): the DRM format the camera writes and the
    /// converter reads.
    pub camera_format: cenalloc::Fourcc,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            camera: "vivid-000".into(),
            display: "vkms".into(),
            frames: 30,
            buffers: 4,
            size: (640, 480),
            resize: None,
            verify: false,
            snapshots: None,
            stop_camera_after: None,
            out: None,
            runs: 1,
            fps: None,
            stateless: false,
            via: None,
            camera_format: cenalloc::Fourcc::Bgr888,
        }
    }
}

fn parse_fourcc(option: &str, s: &str) -> Result<cenalloc::Fourcc, String> {
    let bytes: [u8; 4] = s
        .as_bytes()
        .try_into()
        .map_err(|_| format!("{option} {s}: expected a four-character DRM format, e.g. BG24"))?;
    cenalloc::Fourcc::try_from(u32::from_le_bytes(bytes))
        .map_err(|_| format!("{option} {s}: not a DRM format cenalloc knows"))
}

fn parse_size(option: &str, s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{option} {s}: expected WxH, e.g. 640x480"))?;
    let n = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("{option} {s}: {v:?} is not a positive number"))
    };
    Ok((n(w)?, n(h)?))
}

impl Options {
    /// Usage the pipeline's buffers need beyond producer write and scanout: CPU reads when
    /// displayed frames are verified.
    pub fn extra_usage(&self) -> cenalloc::Usage {
        if self.verify {
            cenalloc::Usage::CPU_READ
        } else {
            cenalloc::Usage::empty()
        }
    }

    /// Parses `args` (without the program name) over `defaults`; `usage` is shown on errors
    /// and for `--help`.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        defaults: Options,
        usage: &str,
    ) -> Result<Options, String> {
        let mut o = defaults;
        let mut it = args.into_iter();
        let mut camera_format_given = false;
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .ok_or_else(|| format!("{name} needs a value\n{usage}"))
            };
            let number = |name: &str, v: String| {
                v.parse::<u32>()
                    .map_err(|_| format!("{name} {v}: not a number\n{usage}"))
            };
            match a.as_str() {
                "--camera" => o.camera = value("--camera")?,
                "--display" => o.display = value("--display")?,
                "--frames" => o.frames = number("--frames", value("--frames")?)?,
                "--buffers" => o.buffers = number("--buffers", value("--buffers")?)?,
                "--size" => o.size = parse_size("--size", &value("--size")?)?,
                "--resize" => o.resize = Some(parse_size("--resize", &value("--resize")?)?),
                "--verify" => o.verify = true,
                "--snapshots" => o.snapshots = Some(value("--snapshots")?.into()),
                "--out" => o.out = Some(value("--out")?.into()),
                "--runs" => o.runs = number("--runs", value("--runs")?)?.max(1),
                "--fps" => o.fps = Some(number("--fps", value("--fps")?)?),
                "--via" => o.via = Some(value("--via")?),
                "--stateless" => o.stateless = true,
                "--camera-format" => {
                    o.camera_format = parse_fourcc("--camera-format", &value("--camera-format")?)?;
                    camera_format_given = true;
                }
                "--stop-camera-after" => {
                    o.stop_camera_after = Some(number(
                        "--stop-camera-after",
                        value("--stop-camera-after")?,
                    )?)
                }
                "-h" | "--help" => return Err(usage.to_owned()),
                other => return Err(format!("unknown option {other}\n{usage}")),
            }
        }
        if o.buffers < 2 {
            return Err(format!(
                "--buffers {}: at least 2 (one on screen, one being captured)",
                o.buffers
            ));
        }
        if camera_format_given && o.via.is_none() {
            return Err(
                "--camera-format needs --via: camera and display share XR24 frames".to_owned(),
            );
        }
        if o.stateless && o.resize.is_some() {
            return Err(
                "--stateless with --resize: the stateless path decodes one size per stream"
                    .to_owned(),
            );
        }
        if o.resize.is_some() && o.frames < 2 {
            return Err(format!(
                "--resize with --frames {}: at least 2 (half before the change, half after)",
                o.frames
            ));
        }
        Ok(o)
    }
}

/// The `main` of a pipeline program: logging, options (exit 2 on bad ones), then `run`:
/// exit 0 when it returns `Ok(true)`, 1 on `Ok(false)` (frames did not verify) or an error,
/// printed with the program's name.
pub fn run_main(
    program: &str,
    defaults: Options,
    usage: &str,
    run: impl FnOnce(&Options) -> Result<bool, crate::pipeline::PipelineError>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let opts = match Options::parse(std::env::args().skip(1), defaults, usage) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{program}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(
            args.iter().map(|s| s.to_string()),
            Options::default(),
            "usage",
        )
    }

    #[test]
    fn defaults_and_every_option() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            (o.camera.as_str(), o.display.as_str()),
            ("vivid-000", "vkms")
        );
        assert_eq!((o.size, o.buffers, o.verify), ((640, 480), 4, false));
        let o = parse(&[
            "--camera",
            "/dev/video3",
            "--display",
            "/dev/dri/card1",
            "--frames",
            "7",
            "--buffers",
            "3",
            "--size",
            "1920x1080",
            "--verify",
            "--snapshots",
            "/tmp/s",
            "--stop-camera-after",
            "2",
            "--resize",
            "1280x720",
            "--via",
            "vim2m",
            "--camera-format",
            "RG16",
        ])
        .unwrap();
        assert_eq!(o.camera, "/dev/video3");
        assert_eq!(o.display, "/dev/dri/card1");
        assert_eq!((o.frames, o.buffers, o.size), (7, 3, (1920, 1080)));
        assert!(o.verify);
        assert_eq!(o.snapshots, Some(PathBuf::from("/tmp/s")));
        assert_eq!(o.stop_camera_after, Some(2));
        assert_eq!(o.resize, Some((1280, 720)));
        assert_eq!(o.via.as_deref(), Some("vim2m"));
        assert_eq!(o.camera_format, cenalloc::Fourcc::Rgb565);
        assert!(!o.stateless);
        assert!(parse(&["--stateless"]).unwrap().stateless);
    }

    #[test]
    fn bad_input_says_what_was_wrong() {
        assert!(parse(&["--size", "640"])
            .unwrap_err()
            .contains("expected WxH"));
        assert!(parse(&["--size", "0x480"])
            .unwrap_err()
            .contains("positive"));
        assert!(parse(&["--resize", "1280"])
            .unwrap_err()
            .contains("--resize 1280: expected WxH"));
        assert!(parse(&["--resize", "800x600", "--frames", "1"])
            .unwrap_err()
            .contains("at least 2"));
        assert!(parse(&["--frames", "many"])
            .unwrap_err()
            .contains("not a number"));
        assert!(parse(&["--frames"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--buffers", "1"])
            .unwrap_err()
            .contains("at least 2"));
        assert!(parse(&["--via", "vim2m", "--camera-format", "RGB"])
            .unwrap_err()
            .contains("expected a four-character DRM format"));
        assert!(parse(&["--via", "vim2m", "--camera-format", "ABCD"])
            .unwrap_err()
            .contains("not a DRM format"));
        assert!(parse(&["--camera-format", "RG16"])
            .unwrap_err()
            .contains("needs --via"));
        assert!(parse(&["--stateless", "--resize", "800x600"])
            .unwrap_err()
            .contains("one size per stream"));
        assert!(parse(&["--bogus"])
            .unwrap_err()
            .contains("unknown option --bogus"));
    }
}
