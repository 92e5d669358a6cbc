//! A small blocking HTTP/1.1 client for the control API (RFC 9112): what
//! `eyrie ctl` speaks, usable by any program; `https://` through rustls,
//! trusting the system's roots and any given certificate ([`Client::trust`]).
//! One connection per request
//! (`Connection: close`); bodies by `Content-Length`, chunked, or to the
//! end of the connection; a Server-Sent Events stream read line by line as
//! it comes. Answers are bounded ([`MAX_HEAD`], [`MAX_BODY`]) whatever the
//! server sends.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A connection: plain, or TLS over TCP.
trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}
type Connection = BufReader<Box<dyn Duplex>>;

/// The longest answer head read.
pub const MAX_HEAD: usize = 64 << 10;
/// The largest answer body read (by default, and at most).
pub const MAX_BODY: u64 = 256 << 20;

/// Why a call failed before an answer came.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port` or `https://host:port`.
    #[error("`{0}` is not a URL like http://127.0.0.1:8080")]
    Url(String),
    /// The certificates to trust could not be read.
    #[error("{0}")]
    Trust(String),
    /// No connection, or it broke.
    #[error("{url}: {source}")]
    Io {
        /// The server.
        url: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The answer is not HTTP/1.1 the client can read.
    #[error("{url}: a malformed answer: {message}")]
    Malformed {
        /// The server.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Its reason phrase.
    pub reason: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A server's API.
pub struct Client {
    url: String,
    authority: String,
    /// Over TLS: the configuration and the name the certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, rustls_pki_types::ServerName<'static>)>,
    token: Option<String>,
    timeout: Duration,
    max_body: u64,
}

impl Client {
    /// A client of the server at `url` (`http://host:port` or `https://…`), sending `token`
    /// as `Authorization: Bearer` when given.
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ClientError> {
        match Client::with_path(url, token)? {
            (client, path) if path == "/" => Ok(client),
            _ => Err(ClientError::Url(url.to_owned())),
        }
    }

    /// A client of the server a whole URL (`http://host:port/path?query`)
    /// names, and the URL's path and query.
    pub fn with_path(url: &str, token: Option<String>) -> Result<(Client, String), ClientError> {
        let bad = || ClientError::Url(url.to_owned());
        let (secure, rest) = match url.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, url.strip_prefix("http://").ok_or_else(bad)?),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains(['@', ' ']) || path.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let tls = if secure {
            let host = authority.rsplit_once(':').map_or("", |(h, _)| h);
            let name =
                rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned()).map_err(|_| bad())?;
            Some((
                crate::serve::tls::client_config(None).map_err(ClientError::Trust)?,
                name,
            ))
        } else {
            None
        };
        let client = Client {
            url: format!("{}://{authority}", if secure { "https" } else { "http" }),
            authority,
            tls,
            token,
            timeout: Duration::from_secs(30),
            max_body: MAX_BODY,
        };
        Ok((client, path))
    }

    /// The same client, trusting the certificates of the PEM file `pem` too
    /// (a server's self-signed one) for `https://`.
    pub fn trust(mut self, pem: &Path) -> Result<Client, ClientError> {
        if let Some((config, _)) = &mut self.tls {
            *config = crate::serve::tls::client_config(Some(pem)).map_err(ClientError::Trust)?;
        }
        Ok(self)
    }

    /// The same client, reading answers' bodies of at most `bytes` (more is an error).
    pub fn max_body(mut self, bytes: u64) -> Client {
        self.max_body = bytes.min(MAX_BODY);
        self
    }

    /// The same client, waiting at most `timeout` to connect, send and for each read.
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    fn io(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            url: self.url.clone(),
            source,
        }
    }

    fn malformed(&self, message: impl Into<String>) -> ClientError {
        ClientError::Malformed {
            url: self.url.clone(),
            message: message.into(),
        }
    }

    /// Sends a request; returns the connection positioned at the body, and the head.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
        read_timeout: Option<Duration>,
    ) -> Result<(Connection, Reply), ClientError> {
        let address = self
            .authority
            .to_socket_addrs()
            .map_err(|e| self.io(e))?
            .next()
            .ok_or_else(|| self.io(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        let tcp = TcpStream::connect_timeout(&address, self.timeout).map_err(|e| self.io(e))?;
        tcp.set_read_timeout(read_timeout).map_err(|e| self.io(e))?;
        tcp.set_write_timeout(Some(self.timeout)).map_err(|e| self.io(e))?;
        let mut stream: Box<dyn Duplex> = match &self.tls {
            None => Box::new(tcp),
            Some((config, name)) => {
                let connection = rustls::ClientConnection::new(Arc::clone(config), name.clone())
                    .map_err(|e| self.io(io::Error::other(e)))?;
                Box::new(rustls::StreamOwned::new(connection, tcp))
            }
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: eyrie-ctl/{}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let (kind, bytes) = body.unwrap_or(("application/json", b""));
        if body.is_some() || !matches!(method, "GET" | "HEAD") {
            head.push_str(&format!("Content-Type: {kind}\r\nContent-Length: {}\r\n", bytes.len()));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(bytes))
            .and_then(|()| stream.flush())
            .map_err(|e| self.io(e))?;
        let mut reader = BufReader::new(stream);
        let reply = self.head(&mut reader)?;
        Ok((reader, reply))
    }

    fn head(&self, reader: &mut Connection) -> Result<Reply, ClientError> {
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let mut line = String::new();
            let left = (MAX_HEAD + 1).saturating_sub(total) as u64;
            let n = reader
                .by_ref()
                .take(left)
                .read_line(&mut line)
                .map_err(|e| self.io(e))?;
            total += n;
            if n == 0 {
                return Err(self.malformed("the connection closed before the head ended"));
            }
            if total > MAX_HEAD {
                return Err(self.malformed(format!("a head over {MAX_HEAD} bytes")));
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let status_line = lines.first().ok_or_else(|| self.malformed("no status line"))?;
        let mut parts = status_line.splitn(3, ' ');
        let (version, code, reason) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
            return Err(self.malformed(format!("`{status_line}` is no HTTP/1 status line")));
        }
        let status = code
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| self.malformed(format!("`{status_line}` has no status code")))?;
        let headers = lines[1..]
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Reply {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        })
    }

    /// A request and its whole answer.
    pub fn call(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Result<Reply, ClientError> {
        self.call_with(method, path, &[], body)
    }

    /// A request with more `headers` (name, value) and its whole answer.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, ClientError> {
        let (reader, mut reply) = self.send(method, path, headers, body, Some(self.timeout))?;
        let mut body = Body::of(reader, &reply);
        let mut bytes = Vec::new();
        body.by_ref()
            .take(self.max_body + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(e))?;
        if bytes.len() as u64 > self.max_body {
            return Err(self.malformed(format!("a body over {} bytes", self.max_body)));
        }
        reply.body = bytes;
        Ok(reply)
    }

    /// A JSON request (`body` serialized) and its answer.
    pub fn json(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<Reply, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.call(method, path, bytes.as_deref().map(|b| ("application/json", b)))
    }

    /// A Server-Sent Events stream: the answer's head, then each `data:`
    /// line's text (with its `event:` name) as it comes, until the server
    /// ends it. Waits for events without a deadline (the server's
    /// keep-alive comments show it is there).
    pub fn events(&self, path: &str) -> Result<(Reply, Events), ClientError> {
        let (reader, reply) = self.send("GET", path, &[], None, None)?;
        let body = BufReader::new(Body::of(reader, &reply));
        Ok((reply, Events { body, name: None }))
    }
}

/// The events of [`Client::events`].
pub struct Events {
    body: BufReader<Body>,
    name: Option<String>,
}

impl Iterator for Events {
    /// `(event name, data)`.
    type Item = io::Result<(String, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut line = String::new();
            match self.body.by_ref().take(MAX_HEAD as u64).read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(name) = line.strip_prefix("event:") {
                self.name = Some(name.trim().to_owned());
            } else if let Some(data) = line.strip_prefix("data:") {
                let name = self.name.take().unwrap_or_else(|| "message".into());
                return Some(Ok((name, data.trim_start().to_owned())));
            }
        }
    }
}

/// An answer's body: sized, chunked, or to the end of the connection.
enum Body {
    Sized(io::Take<Connection>),
    Chunked { reader: Connection, left: u64, done: bool },
    Close(Connection),
}

impl Body {
    fn of(reader: Connection, reply: &Reply) -> Body {
        if reply
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            Body::Chunked {
                reader,
                left: 0,
                done: false,
            }
        } else if let Some(length) = reply.header("content-length").and_then(|l| l.parse().ok()) {
            Body::Sized(reader.take(length))
        } else {
            Body::Close(reader)
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Sized(r) => r.read(buf),
            Body::Close(r) => r.read(buf),
            Body::Chunked { reader, left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    reader.by_ref().take(1024).read_line(&mut line)?;
                    if line.trim().is_empty() {
                        // The CRLF after a chunk's data.
                        line.clear();
                        reader.by_ref().take(1024).read_line(&mut line)?;
                    }
                    let size = line.trim().split(';').next().unwrap_or("");
                    *left = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size `{}`", line.trim()))
                    })?;
                    if *left == 0 {
                        *done = true;
                        return Ok(0);
                    }
                }
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering `answer` to one request.
    fn once(answer: impl Into<Vec<u8>>) -> String {
        let answer = answer.into();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&answer);
        });
        format!("http://{addr}")
    }

    #[test]
    fn sized_chunked_and_closed_bodies_are_read() {
        for (answer, body) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..], "hello"),
            (
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=1\r\nlo\r\n0\r\n\r\n",
                "hello",
            ),
            (b"HTTP/1.1 404 Not Found\r\n\r\nhello", "hello"),
        ] {
            let url = once(answer);
            let reply = Client::new(&url, None).unwrap().call("GET", "/", None).unwrap();
            assert_eq!(String::from_utf8(reply.body).unwrap(), body);
        }
    }

    #[test]
    fn events_come_line_by_line_with_their_names() {
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for chunk in ["event: closed\ndata: {\"a\":1}\n\n", ": ping\n\n", "data: 2\n"] {
            answer.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        let url = once(answer);
        let (reply, events) = Client::new(&url, None).unwrap().events("/e").unwrap();
        assert_eq!(reply.status, 200);
        let got: Vec<_> = events.map(|e| e.unwrap()).collect();
        assert_eq!(
            got,
            [("closed".into(), "{\"a\":1}".into()), ("message".into(), "2".into())]
        );
    }

    #[test]
    fn bad_urls_and_answers_are_errors_that_say_so() {
        assert!(Client::new("ftp://x", None).is_err());
        assert_eq!(Client::new("https://x", None).unwrap().authority, "x:443");
        assert_eq!(
            Client::new("https://[::1]:8443", None).unwrap().url,
            "https://[::1]:8443"
        );
        assert!(Client::new("http://user@host:1", None).is_err());
        assert_eq!(Client::new("http://localhost", None).unwrap().authority, "localhost:80");
        assert!(Client::new("http://localhost/x", None).is_err());
        let (c, path) = Client::with_path("http://h:9/hook?a=1", None).unwrap();
        assert_eq!((c.authority.as_str(), path.as_str()), ("h:9", "/hook?a=1"));
        assert_eq!(Client::with_path("http://h?a", None).unwrap().1, "/?a");
        let url = once(b"SSH-2.0-OpenSSH\r\n\r\n");
        let e = Client::new(&url, None).unwrap().call("GET", "/", None).unwrap_err();
        assert!(e.to_string().contains("no HTTP/1 status line"), "{e}");
    }
}
