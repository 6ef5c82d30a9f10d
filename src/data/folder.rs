//! Image folders: `root/<class>/<image>`, classes in sorted order, any format the `image` crate
//! reads (JPEG and PNG are built in). Grayscale and RGBA images are converted to RGB.
//!
//! Every image is decoded once when the folder is opened (on all cores) and kept in memory,
//! scaled down so its shorter side is at most `keep_side` (twice the training resolution is
//! plenty for random-resized crops), so epochs cost no decoding. A file that cannot be read or
//! decoded is skipped and listed, with the reason ([`Source::skipped`]), for the caller to
//! report.

use super::{Image, Source};
use crate::error::{Error, Result};
use image::imageops::FilterType;
use std::path::{Path, PathBuf};

/// A decoded image folder.
pub struct Folder {
    images: Vec<Image>,
    labels: Vec<u32>,
    classes: Vec<String>,
    skipped: Vec<String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        error: source,
    }
}

/// The entries of `dir` that `keep` accepts, sorted by path (a fixed order on every system).
fn sorted_entries(dir: &Path, keep: fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| keep(p))
        .collect();
    entries.sort();
    Ok(entries)
}

/// The files of `root/<class>/`, sorted, with their class indices; classes sorted by name.
fn scan(root: &Path, classes: Option<&[String]>) -> Result<(Vec<String>, Vec<(PathBuf, u32)>)> {
    if !root.is_dir() {
        return Err(Error::invalid(
            "data",
            format!("{} is not a folder (expected root/<class>/<image>)", root.display()),
        ));
    }
    let dirs = sorted_entries(root, Path::is_dir)?;
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().expect("a dir name").to_string_lossy().into_owned())
        .collect();
    let classes = match classes {
        Some(c) => {
            if let Some(extra) = names.iter().find(|n| !c.contains(n)) {
                return Err(Error::invalid(
                    "data",
                    format!(
                        "{}: class folder {extra:?} is not one of the training classes {c:?}",
                        root.display()
                    ),
                ));
            }
            c.to_vec()
        }
        None => names.clone(),
    };
    let mut files = Vec::new();
    for (dir, name) in dirs.iter().zip(&names) {
        let label = classes.iter().position(|c| c == name).expect("checked above") as u32;
        files.extend(sorted_entries(dir, Path::is_file)?.into_iter().map(|p| (p, label)));
    }
    if dirs.is_empty() {
        let loose = sorted_entries(root, Path::is_file)?.len();
        let found = match loose {
            0 => "holds no images".to_string(),
            n => format!("holds {n} files but no class folders"),
        };
        return Err(Error::invalid(
            "data",
            format!(
                "{} {found} (expected root/<class>/<image>: one folder per class, named after it)",
                root.display()
            ),
        ));
    }
    if files.is_empty() {
        return Err(Error::invalid(
            "data",
            format!(
                "{}: its class folders hold no images (expected root/<class>/<image>)",
                root.display()
            ),
        ));
    }
    if classes.len() == 1 {
        return Err(Error::invalid(
            "data",
            format!(
                "{} has one class folder ({:?}): a classifier needs at least two classes",
                root.display(),
                classes[0]
            ),
        ));
    }
    Ok((classes, files))
}

/// Whether a JPEG file's last scan is followed by the end-of-image marker: a truncated file
/// lacks it, and the decoder would fill the missing rows with grey without a word. (Inside a
/// scan a 0xFF byte is always followed by 0x00 or a restart marker, so 0xFF 0xD9 after the
/// last start-of-scan can only be the end.)
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|s| bytes[s..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// Decodes one file to RGB, scaled down to a shorter side of at most `keep_side`.
fn decode(path: &Path, keep_side: u32) -> std::result::Result<Image, String> {
    decode_bytes(&std::fs::read(path).map_err(|e| e.to_string())?, keep_side)
}

/// The largest image side a folder decodes, and the most memory one decode may take: a small
/// file that claims a huge image is refused before its pixels are allocated.
pub const MAX_SIDE: u32 = 8192;
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// An image file's bytes decoded to RGB within [`MAX_SIDE`] and [`MAX_DECODE_BYTES`]: the
/// reason when they are not a whole image.
pub fn decode_rgb(bytes: &[u8]) -> std::result::Result<Image, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err("truncated JPEG (no end-of-image marker after its last scan)".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    Ok(reader.decode().map_err(|e| e.to_string())?.to_rgb8())
}

/// [`decode`] of a file's bytes.
pub fn decode_bytes(bytes: &[u8], keep_side: u32) -> std::result::Result<Image, String> {
    let img = decode_rgb(bytes)?;
    let short = img.width().min(img.height());
    if short <= keep_side {
        return Ok(img);
    }
    let scale = keep_side as f32 / short as f32;
    let (w, h) = (
        ((img.width() as f32 * scale).round() as u32).max(1),
        ((img.height() as f32 * scale).round() as u32).max(1),
    );
    Ok(image::imageops::resize(&img, w, h, FilterType::Triangle))
}

impl Folder {
    /// Opens and decodes `root`. With `classes`, the folder must use those class names (a
    /// validation folder must match the training classes).
    pub fn open(root: &Path, classes: Option<&[String]>, keep_side: u32) -> Result<Folder> {
        let (classes, files) = scan(root, classes)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = files.len().div_ceil(threads);
        let decoded: Vec<std::result::Result<Image, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| s.spawn(move || part.iter().map(|(p, _)| decode(p, keep_side)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a decoding thread panicked"))
                .collect()
        });
        let (mut images, mut labels, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for ((path, label), result) in files.into_iter().zip(decoded) {
            match result {
                Ok(img) => {
                    images.push(img);
                    labels.push(label);
                }
                Err(e) => skipped.push(format!("{}: {e}", path.display())),
            }
        }
        if images.is_empty() {
            return Err(Error::invalid(
                "data",
                format!("{}: none of the {} files could be decoded", root.display(), skipped.len()),
            ));
        }
        Ok(Folder {
            images,
            labels,
            classes,
            skipped,
        })
    }
}

impl Source for Folder {
    fn len(&self) -> usize {
        self.images.len()
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    fn image(&self, i: usize) -> Image {
        self.images[i].clone()
    }

    fn skipped(&self) -> &[String] {
        &self.skipped
    }
}
