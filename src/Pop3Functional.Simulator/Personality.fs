namespace Pop3Functional.Simulator

open System

/// How a server writes an empty SASL challenge line (RFC 5034 §4 says "+ "; Exchange sends "+").
type ContinuationStyle =
    /// "+ " followed by the base64 challenge (Dovecot, Gmail, RFC 5034).
    | PlusSpace = 0
    /// "+" alone when the challenge is empty (Exchange/Outlook).
    | BarePlus = 1

/// What follows +OK on a RETR or TOP status line.
type RetrStatusStyle =
    /// "+OK 4096 octets" (Dovecot, Courier; RFC 1939's example).
    | Octets = 0
    /// "+OK Message follows" (Cyrus, Gmail): no size. Clients must not size anything from it.
    | MessageFollows = 1
    /// "+OK" with no text (qmail, Exchange).
    | Bare = 2

/// How a real server behaves: what it says and the quirks it is known for (reference/peers.md §4,
/// DESIGN §9). Every field is plain data, so a test can start from a preset and change one thing.
type Personality =
    {
        /// A short name ("dovecot", "courier", ...).
        Name: string
        /// The greeting text after "+OK "; "{timestamp}" is replaced by the APOP timestamp (RFC 1939 §7).
        Greeting: string
        /// Answers CAPA; false gives "-ERR" to CAPA, as an RFC 1939-only server does.
        CapaSupported: bool
        /// CAPA lines in the AUTHORIZATION state, in order. "STLS" is listed only when STLS is
        /// possible on this connection; "SASL" is replaced by "SASL" and SaslMechanisms (dropped when
        /// there are none).
        CapabilitiesBeforeLogin: string list
        /// CAPA lines in the TRANSACTION state, with the same two substitutions.
        CapabilitiesAfterLogin: string list
        /// The SASL mechanisms AUTH accepts, in the order CAPA lists them.
        SaslMechanisms: string list
        /// Accept USER/PASS.
        UserPass: bool
        /// Accept APOP (the greeting carries a timestamp; RFC 1939 §7).
        Apop: bool
        /// Accept RPOP (RFC 1081) after USER; almost no server does any longer.
        Rpop: bool
        /// Accept TOP (RFC 1939 §7, optional).
        Top: bool
        /// Accept UIDL (RFC 1939 §7, optional).
        Uidl: bool
        /// Accept UTF8 (RFC 6856 §2).
        Utf8: bool
        /// The languages LANG offers (RFC 6856 §3); empty when LANG is not supported.
        Languages: (string * string) list
        /// Put RFC 2449/3206 response codes in brackets after -ERR.
        ResponseCodes: bool
        /// Mechanisms whose RFC 5034 initial response the server refuses with "-ERR Protocol error.
        /// Connection is closed. 10", closing the connection: they must be sent in two lines (AUTH,
        /// an empty challenge, then the response). Exchange Online does this to XOAUTH2
        /// (getmail6/getmail6#256, marlam/mpop#11).
        InitialResponseRefused: string list
        /// How an empty SASL challenge is written.
        Continuation: ContinuationStyle
        /// What follows +OK on RETR/TOP.
        RetrStatus: RetrStatusStyle
        /// The text after +OK to QUIT; empty sends a bare "+OK" (Cyrus).
        QuitText: string
        /// Rewrites a message whose header has raw 8-bit octets into a new multipart/mixed message
        /// unless the client sent UTF8, so RETR returns more octets than LIST announced (Courier,
        /// DESIGN §9). The size mismatch must surface in the client as an event.
        RewritesEightBitHeaders: bool
        /// Lock the maildrop for the session ([IN-USE] for a second session).
        LocksMaildrop: bool
        /// Enforce this minimum time between logins with [LOGIN-DELAY]; zero for none
        /// (Courier advertises LOGIN-DELAY 10 and does not enforce it).
        EnforcedLoginDelay: TimeSpan
        /// Private extension commands (RFC 2449 §8) the server answers in both states, by upper-case
        /// keyword: None for a single-line "+OK", Some lines for a multi-line reply (dot-stuffed).
        PrivateCommands: Map<string, string list option>
    }
