//! Rules for graphics on desktop guests: the video model and QXL video memory.

use super::{Applies, Cx, Edit, FixClass, Meta, Out, Rule, Severity, virsh_edit};
use kvmtune_domain::{GuestOs, NodeId};

/// libvirt's default QXL VGA framebuffer (vgamem), KiB.
const QXL_VGAMEM_KIB: u64 = 16384;
/// libvirt's default QXL primary bar (ram), KiB.
const QXL_RAM_KIB: u64 = 65536;

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "gfx-video-model",
                title: "Desktop on an emulated VGA adapter",
                severity: Severity::Warn,
                profiles: &["desktop"],
                why: "cirrus emulates a 1990s Cirrus Logic chip: a small framebuffer (low resolutions and colour depths), every screen update emulated; QEMU stopped making it the default in 2.2. Standard VGA (model vga) is the compatible baseline but has no acceleration and no multi-head. A desktop is better served by virtio (virtio-vga: Linux's virtio_gpu driver; Windows' viogpudo from virtio-win) or qxl with SPICE (Linux's qxl driver; Windows' qxldod). Warn for cirrus, info for vga. Beside an assigned PCI device (a passed-through GPU) the emulated adapter is only a fallback and boot console: info at most, no fix.",
                fix: "<video><model type='virtio'/></video> for Linux guests; for Windows, qxl with SPICE graphics, else virtio, after installing the virtio-win display driver.",
                risk: "The guest sees a new display adapter: Linux has virtio_gpu and qxl in the kernel; Windows falls back to the Microsoft Basic Display Adapter (fixed resolutions) until the virtio-win display driver is installed.",
                class: FixClass::GuestVisible,
                source: "Gerd Hoffmann, 'VGA and other display devices in qemu', kraxel.org blog, 2019-09; libvirt domain format (video devices)",
                needs_host: false,
            },
            check: video_model,
        },
        Rule {
            meta: Meta {
                id: "gfx-qxl-memory",
                title: "QXL video memory below libvirt's defaults",
                severity: Severity::Info,
                profiles: &["desktop"],
                why: "A QXL adapter's vgamem is the part of its primary bar that holds the VGA framebuffer and the QXL primary surface: it caps the screen resolution, with or without the guest's QXL driver. Below libvirt's default of 16 MiB, 32-bit resolutions stop near 1920x1080 (7.9 MiB); 2560x1440 needs 14.1 MiB.",
                fix: "vgamem='16384' on the qxl <model> (or drop the attribute for libvirt's default).",
                risk: "QEMU reserves the larger framebuffer in the guest's video BAR (host memory grows by the difference).",
                class: FixClass::Safe,
                source: "libvirt domain format (video devices: ram, vram, vgamem for qxl); QEMU qxl device (vgamem_mb, default 16)",
                needs_host: false,
            },
            check: qxl_memory,
        },
    ]
}

fn x86(cx: &Cx) -> bool {
    cx.d.is_hvm()
        && cx
            .d
            .os
            .arch
            .as_deref()
            .is_none_or(|a| matches!(a, "x86_64" | "i686"))
}

/// The primary video adapter: the one with `primary='yes'`, else the first; its `<model>`.
fn primary_video<'a>(cx: &Cx<'a>) -> Option<(NodeId, &'a str)> {
    let models: Vec<(NodeId, &str)> =
        cx.d.devices
            .videos
            .iter()
            .filter_map(|v| {
                let m = cx.doc.child(v.node, "model")?;
                Some((m, cx.doc.attr(m, "type")?))
            })
            .collect();
    models
        .iter()
        .find(|(m, _)| cx.doc.attr(*m, "primary") == Some("yes"))
        .or(models.first())
        .copied()
}

fn video_model(cx: &Cx, out: &mut Out) {
    if !x86(cx) || cx.d.devices.graphics.is_empty() {
        return; // nobody looks at the screen of a headless guest
    }
    let Some((model, ty)) = primary_video(cx) else {
        return;
    };
    let sev = match ty {
        "cirrus" => out.level,
        "vga" => Severity::Info,
        _ => return,
    };
    // an assigned PCI device (usually the GPU the desktop is shown on): the emulated
    // adapter is a fallback and boot console beside it; changing it only gives Windows a
    // second adapter. Info, no fix.
    if let Some(h) = cx.d.devices.hostdevs.iter().find(|h| {
        h.dtype.as_deref() == Some("pci")
            && cx.doc.attr(h.node, "mode").is_none_or(|m| m == "subsystem")
    }) {
        out.at(
            Severity::Info,
            format!(
                "the primary emulated video adapter is {ty}, beside an assigned PCI device (a passed-through GPU?): the emulated adapter is only a fallback and boot console there; leave it, or set <model type='none'/> if the assigned GPU drives every display"
            ),
            vec![cx.ev(model), cx.ev(h.node)],
        )
        .suspect();
        return;
    }
    let spice =
        cx.d.devices
            .graphics
            .iter()
            .any(|g| g.dtype.as_deref() == Some("spice"));
    let f = out.at(
        sev,
        format!("the desktop's primary video adapter is {ty}"),
        vec![cx.ev(model)],
    );
    let (to, class, risk) = match cx.d.guest_os() {
        GuestOs::Linux(_) => (
            "virtio",
            FixClass::GuestVisible,
            "The guest sees a virtio-vga adapter: Linux drives it with virtio_gpu (in the kernel since 4.2); the X server's modesetting driver or Wayland use it as is.".to_string(),
        ),
        GuestOs::Windows(_) => {
            let (to, drv) = if spice {
                ("qxl", "qxldod")
            } else {
                ("virtio", "viogpudo")
            };
            (
                to,
                FixClass::GuestDriver,
                format!(
                    "Windows needs the virtio-win display driver ({drv}) for the {to} adapter: until it is installed it uses the Microsoft Basic Display Adapter at fixed resolutions."
                ),
            )
        }
        GuestOs::Unknown => {
            f.message
                .push_str("; guest OS unknown: virtio (Linux) or qxl/virtio with virtio-win drivers (Windows)");
            return;
        }
    };
    // the old model's memory sizes do not apply to the new one: libvirt sets its defaults
    let mut edits = vec![Edit::set(cx.doc, model, "type", to)];
    for a in ["ram", "vram", "vram64", "vgamem"] {
        if cx.doc.attr(model, a).is_some() {
            edits.push(Edit::unset(cx.doc, model, a));
        }
    }
    f.fix(
        format!("Use a {to} video adapter"),
        edits,
        virsh_edit(
            &cx.shell_name(),
            &format!("<video><model type='{to}'/></video>"),
        ),
        Applies::NextBoot,
    )
    .class(class, risk);
}

fn kib_attr(cx: &Cx, node: NodeId, a: &str) -> Option<u64> {
    cx.doc.attr(node, a).and_then(|v| v.trim().parse().ok())
}

fn qxl_memory(cx: &Cx, out: &mut Out) {
    if !x86(cx) {
        return;
    }
    for v in &cx.d.devices.videos {
        let Some(model) = cx.doc.child(v.node, "model") else {
            continue;
        };
        if cx.doc.attr(model, "type") != Some("qxl") {
            continue;
        }
        let Some(vgamem) = kib_attr(cx, model, "vgamem") else {
            continue; // libvirt's default
        };
        if vgamem >= QXL_VGAMEM_KIB {
            continue;
        }
        let f = out.finding(
            format!(
                "qxl vgamem {} MiB, below libvirt's default {} MiB",
                vgamem / 1024,
                QXL_VGAMEM_KIB / 1024
            ),
            vec![cx.ev_attr(model, "vgamem")],
        );
        // QEMU keeps the VGA framebuffer inside the primary bar: only raise it where that
        // bar is libvirt's default size or larger
        if kib_attr(cx, model, "ram").is_some_and(|r| r < QXL_RAM_KIB) {
            f.message.push_str(&format!(
                "; ram is below {} MiB too: raise both by hand",
                QXL_RAM_KIB / 1024
            ));
            continue;
        }
        f.fix(
            "Give the qxl adapter 16 MiB of vgamem",
            vec![Edit::set(
                cx.doc,
                model,
                "vgamem",
                &QXL_VGAMEM_KIB.to_string(),
            )],
            virsh_edit(&cx.shell_name(), "<model type='qxl' vgamem='16384'/>"),
            Applies::NextBoot,
        );
    }
}

#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    const WIN: &str = "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='http://microsoft.com/win/10'/></libosinfo:libosinfo></metadata>";
    const LINUX: &str = "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='http://fedoraproject.org/fedora/40'/></libosinfo:libosinfo></metadata>";

    fn desk(meta: &str, graphics: &str, video: &str) -> Vec<String> {
        vec![dom(&format!(
            "{meta}<devices>{graphics}<video><model {video}/></video></devices>"
        ))]
    }

    const GPU: &str = "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
<address domain='0x0000' bus='0x0a' slot='0x00' function='0x0'/></source></hostdev>";

    const VNC: &str = "<graphics type='vnc' port='-1'/>";
    const SPICE: &str = "<graphics type='spice' autoport='yes'/>";

    pub(crate) fn cases() -> Vec<Case> {
        vec![
            // gfx-video-model
            case(
                "Windows desktop on cirrus beside an assigned GPU (wild 15.xml): info, no fix",
                "gfx-video-model",
                "desktop",
                None,
                vec![dom(&format!(
                    "{WIN}<devices>{SPICE}<video><model type='cirrus'/></video>{GPU}</devices>"
                ))],
                INFO,
            ),
            case(
                "Linux desktop on cirrus",
                "gfx-video-model",
                "desktop",
                None,
                desk(LINUX, VNC, "type='cirrus' vram='16384' heads='1'"),
                WARN,
            ),
            case(
                "Windows desktop on vga",
                "gfx-video-model",
                "desktop",
                None,
                desk(WIN, SPICE, "type='vga' vram='16384' heads='1'"),
                INFO,
            ),
            case(
                "unknown guest on cirrus",
                "gfx-video-model",
                "desktop",
                None,
                desk("", VNC, "type='cirrus'"),
                WARN,
            ),
            case(
                "desktop on qxl",
                "gfx-video-model",
                "desktop",
                None,
                desk(WIN, SPICE, "type='qxl'"),
                NONE,
            ),
            case(
                "headless desktop on cirrus",
                "gfx-video-model",
                "desktop",
                None,
                desk(LINUX, "", "type='cirrus'"),
                NONE,
            ),
            case(
                "server on cirrus",
                "gfx-video-model",
                "server",
                None,
                desk(LINUX, VNC, "type='cirrus'"),
                NONE,
            ),
            // gfx-qxl-memory
            case(
                "qxl with 8 MiB vgamem",
                "gfx-qxl-memory",
                "desktop",
                None,
                desk(
                    WIN,
                    SPICE,
                    "type='qxl' ram='65536' vram='65536' vgamem='8192'",
                ),
                INFO,
            ),
            case(
                "qxl with 16 MiB vgamem",
                "gfx-qxl-memory",
                "desktop",
                None,
                desk(
                    WIN,
                    SPICE,
                    "type='qxl' ram='65536' vram='65536' vgamem='16384'",
                ),
                NONE,
            ),
            case(
                "qxl with default sizes",
                "gfx-qxl-memory",
                "desktop",
                None,
                desk(WIN, SPICE, "type='qxl'"),
                NONE,
            ),
        ]
    }

    #[test]
    fn graphics_rules() {
        run_cases(&cases());
    }

    #[test]
    fn video_fixes_follow_the_guest() {
        let fix = |v: Vec<String>| {
            findings(&v, "desktop", None)
                .into_iter()
                .find(|f| f.rule == "gfx-video-model")
                .and_then(|f| f.fix)
        };
        // an assigned GPU: the emulated adapter is a fallback, left alone (was a WARN with
        // a cirrus -> qxl fix on wild-domains/15.xml)
        assert!(
            fix(vec![dom(&format!(
                "{WIN}<devices>{SPICE}<video><model type='cirrus'/></video>{GPU}</devices>"
            ))])
            .is_none()
        );
        let linux = fix(desk(LINUX, VNC, "type='cirrus' vram='16384'")).unwrap();
        assert_eq!(linux.summary, "Use a virtio video adapter");
        assert_eq!(linux.class, crate::audit::FixClass::GuestVisible);
        assert_eq!(linux.edits.len(), 2, "{linux:#?}");
        let win_spice = fix(desk(WIN, SPICE, "type='cirrus'")).unwrap();
        assert_eq!(win_spice.summary, "Use a qxl video adapter");
        assert_eq!(win_spice.class, crate::audit::FixClass::GuestDriver);
        let win_vnc = fix(desk(WIN, VNC, "type='vga'")).unwrap();
        assert_eq!(win_vnc.summary, "Use a virtio video adapter");
        assert!(win_vnc.risk.contains("viogpudo"), "{}", win_vnc.risk);
        assert!(fix(desk("", VNC, "type='cirrus'")).is_none());
    }
}
