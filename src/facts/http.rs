//! The HTTP version of a request, as recorded (`HTTP/1.1`, `HTTP/2.0`: hyper's spelling).

super::named::named_words! {
    /// An HTTP version (HTTP/1.1 when none is known).
    #[derive(Default)]
    pub enum HttpVersion {
        /// HTTP/0.9.
        Http09 = "HTTP/0.9",
        /// HTTP/1.0.
        Http10 = "HTTP/1.0",
        /// HTTP/1.1.
        #[default]
        Http11 = "HTTP/1.1",
        /// HTTP/2.
        Http2 = "HTTP/2.0",
        /// HTTP/3.
        Http3 = "HTTP/3.0",
    }
    /// A version this version does not write (a newer recording), kept as read.
}

impl From<http::Version> for HttpVersion {
    fn from(v: http::Version) -> HttpVersion {
        match v {
            http::Version::HTTP_09 => HttpVersion::Http09,
            http::Version::HTTP_10 => HttpVersion::Http10,
            http::Version::HTTP_11 => HttpVersion::Http11,
            http::Version::HTTP_2 => HttpVersion::Http2,
            http::Version::HTTP_3 => HttpVersion::Http3,
            other => HttpVersion::Other(format!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HttpVersion;

    #[test]
    fn spelled_as_hyper_debug_prints_it() {
        for v in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(HttpVersion::from(v).as_str(), format!("{v:?}"));
        }
        assert_eq!(
            HttpVersion::from_name("HTTP/4.0"),
            HttpVersion::Other("HTTP/4.0".into())
        );
    }
}
