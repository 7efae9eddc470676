//! The operations of a plan, and the itemised change list shown to users.

use serde::Serialize;

use crate::chunk::{ChunkRef, Hash};
use crate::entry::{Entry, Kind, Meta};
use crate::manifest::ChunkLocation;
use crate::path::RelPath;

/// Where one chunk of a file being written comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Copied from a file already at the destination (verified as read).
    Local {
        chunk: ChunkRef,
        from: ChunkLocation,
    },
    /// Copied from the rescue spool, where it was saved before its only
    /// destination copy was overwritten or deleted.
    Rescued { chunk: ChunkRef, slot: u32 },
    /// Shipped by the sender: chunk number `stream` of the transfer stream.
    Remote { chunk: ChunkRef, stream: u32 },
}

impl Piece {
    /// The chunk this piece fills.
    pub fn chunk(&self) -> &ChunkRef {
        match self {
            Piece::Local { chunk, .. }
            | Piece::Rescued { chunk, .. }
            | Piece::Remote { chunk, .. } => chunk,
        }
    }
}

/// A regular file to write (create or replace) at the destination.
#[derive(Clone, Debug)]
pub struct FileOp {
    /// The source's entry: path, metadata, whole hash and chunk list.
    pub entry: Entry,
    /// One piece per chunk, in file order.
    pub pieces: Vec<Piece>,
    /// What the destination has at this path now, if anything.
    pub replaces: Option<Kind>,
}

/// A symlink to create or replace.
#[derive(Clone, Debug)]
pub struct LinkOp {
    pub entry: Entry,
    pub replaces: Option<Kind>,
}

/// A folder to create (metadata is set afterwards, deepest first).
#[derive(Clone, Debug)]
pub struct DirOp {
    pub path: RelPath,
    pub replaces: Option<Kind>,
}

/// A hard link to make (`--hard-links`): `path` becomes another name of `leader`.
#[derive(Clone, Debug)]
pub struct HardLinkOp {
    pub path: RelPath,
    pub leader: RelPath,
    pub meta: Meta,
    pub replaces: Option<Kind>,
}

/// A chunk the sender must ship.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StreamChunk {
    pub hash: Hash,
    pub length: u32,
}

/// What kind of change a line of the itemised list reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ChangeKind {
    /// `+` created.
    #[serde(rename = "create")]
    Create,
    /// `M` content (or symlink target) changed.
    #[serde(rename = "update")]
    Update,
    /// `m` metadata only (mode or mtime).
    #[serde(rename = "meta")]
    Meta,
    /// `-` deleted.
    #[serde(rename = "delete")]
    Delete,
    /// `R` moved: created from a deleted entry with the same content.
    #[serde(rename = "rename")]
    Rename,
    /// `T` replaced by an entry of another kind.
    #[serde(rename = "type")]
    TypeChange,
    /// `h` hard link to another path.
    #[serde(rename = "hardlink")]
    HardLink,
}

impl ChangeKind {
    /// The one-character marker of the itemised format.
    pub fn marker(self) -> char {
        match self {
            ChangeKind::Create => '+',
            ChangeKind::Update => 'M',
            ChangeKind::Meta => 'm',
            ChangeKind::Delete => '-',
            ChangeKind::Rename => 'R',
            ChangeKind::TypeChange => 'T',
            ChangeKind::HardLink => 'h',
        }
    }
}

/// One line of the itemised change list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub change: ChangeKind,
    #[serde(serialize_with = "ser_path")]
    pub path: RelPath,
    /// The entry's kind after the change (before it, for deletions).
    pub kind: Kind,
    /// For renames, the old path; for hard links, the leader.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub from: Option<RelPath>,
}

impl Change {
    /// The itemised line: marker, path (folders end in `/`), and `from`.
    pub fn line(&self) -> String {
        let slash = if self.kind == Kind::Dir && !self.path.is_root() {
            "/"
        } else {
            ""
        };
        let mut s = format!("{} {}{slash}", self.change.marker(), self.path.display());
        match (self.change, &self.from) {
            (ChangeKind::Rename, Some(from)) => {
                s = format!("R {} -> {}{slash}", from.display(), self.path.display())
            }
            (ChangeKind::HardLink, Some(from)) => s.push_str(&format!(" => {}", from.display())),
            _ => {}
        }
        s
    }
}

fn ser_path<S: serde::Serializer>(p: &RelPath, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.display())
}

fn ser_opt_path<S: serde::Serializer>(p: &Option<RelPath>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&p.display()),
        None => s.serialize_none(),
    }
}
