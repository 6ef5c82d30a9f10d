//! CIFAR-10 in its binary format (`cifar-10-batches-bin`): `data_batch_1.bin` .. `_5.bin` for
//! training and `test_batch.bin` for evaluation. Each record is one label byte and 3072 pixel
//! bytes (the red, green and blue 32x32 planes); a file of any other size is refused.

use super::{Image, Source};
use crate::error::{Error, Result};
use std::path::Path;

/// Bytes per record: the label and three 32x32 planes.
const RECORD: usize = 1 + 3 * 32 * 32;

pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// An error unless `bytes` are whole records with labels 0-9.
fn check_records(bytes: &[u8], source: &str) -> Result<()> {
    let error = |message: String| Error::Format {
        path: source.into(),
        message,
    };
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(error(format!(
            "{} bytes is not a whole number of CIFAR-10 records of {RECORD} bytes (10000 records = 30730000 bytes)",
            bytes.len()
        )));
    }
    if let Some(pos) = bytes.chunks(RECORD).position(|r| r[0] >= 10) {
        return Err(error(format!("record {pos} has label {}, not 0-9", bytes[pos * RECORD])));
    }
    Ok(())
}

/// The records of some CIFAR-10 batch files, in memory.
pub struct Cifar {
    records: Vec<u8>,
    classes: Vec<String>,
}

impl Cifar {
    /// Loads `files` (names inside `dir`).
    pub fn open(dir: &Path, files: &[&str]) -> Result<Cifar> {
        let mut records = Vec::new();
        for name in files {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                error: source,
            })?;
            check_records(&bytes, &path.display().to_string())?;
            records.extend_from_slice(&bytes);
        }
        Ok(Cifar::from_records(records))
    }

    /// The records of one batch file already in memory; `source` names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, source: &str) -> Result<Cifar> {
        check_records(&bytes, source)?;
        Ok(Cifar::from_records(bytes))
    }

    fn from_records(records: Vec<u8>) -> Cifar {
        Cifar {
            records,
            classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The training split (`data_batch_1..5`) and the test split of a `cifar-10-batches-bin` folder.
    pub fn splits(dir: &Path) -> Result<(Cifar, Cifar)> {
        let train = [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ];
        Ok((Cifar::open(dir, &train)?, Cifar::open(dir, &["test_batch.bin"])?))
    }
}

impl Source for Cifar {
    fn len(&self) -> usize {
        self.records.len() / RECORD
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, i: usize) -> u32 {
        self.records[i * RECORD] as u32
    }

    fn image(&self, i: usize) -> Image {
        let r = &self.records[i * RECORD + 1..(i + 1) * RECORD];
        Image::from_fn(32, 32, |x, y| {
            let p = (y * 32 + x) as usize;
            image::Rgb([r[p], r[1024 + p], r[2048 + p]])
        })
    }
}
