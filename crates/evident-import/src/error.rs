//! The one error of the importers: a file that cannot be read, or cannot be read as asked. A
//! record that cannot become an event is not an error but a [`crate::Record`] with a problem.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read; `context` names it (and the line, when known).
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A file that cannot be read as asked (its format cannot be told, it does not look like the
    /// format asked, a mapped column is not in its header) or a CSV mapping that is incomplete.
    #[error("{0}")]
    Input(String),
}

impl Error {
    /// Makes an [`io::Error`] an [`Error::Io`] with `context`.
    pub(crate) fn io(context: String) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
