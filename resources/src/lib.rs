//! Types shared by every sealpod part.
