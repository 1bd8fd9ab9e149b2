namespace Pop3Functional.Core

/// The first line of a reply: +OK or -ERR, an optional response code and the text.
type StatusLine =
    {
        IsOk: bool
        /// The bracketed code at the start of the text (RFC 2449 §8), when present and well formed.
        Code: ResponseCode option
        /// The text after the status (and after the code, when there is one).
        Text: string
    }

/// The server's greeting (RFC 1939 §4).
type Greeting =
    {
        Text: string
        Code: ResponseCode option
        /// The APOP timestamp, only when it is a strict msg-id "<local@domain>" of printable ASCII
        /// (RFC 1939 §7; CVE-2007-1558). Anything else means no APOP.
        ApopTimestamp: string option
    }

/// The answer to STAT (RFC 1939 §5).
type MaildropStat = { Count: uint64; Octets: uint64 }

/// One line of a LIST answer (RFC 1939 §5).
type ListEntry = { Number: uint64; Octets: uint64 }

/// One line of a UIDL answer (RFC 1939 §7).
type UidEntry = { Number: uint64; Uid: MessageUid }

/// One line of a LANG listing (RFC 6856 §3).
type LanguageEntry = { Tag: string; Description: string }

/// EXPIRE: how long the server keeps messages (RFC 2449 §6.7).
type ExpirePolicy =
    {
        /// Days, or None for NEVER.
        Days: uint64 option
        /// True when the value may differ per user (the USER suffix before login).
        PerUser: bool
    }

/// LOGIN-DELAY: the minimum seconds between logins (RFC 2449 §6.5).
type LoginDelayPolicy = { Seconds: uint64; PerUser: bool }

/// The answer to CAPA, every RFC 2449 capability typed, plus STLS, UTF8, LANG and unknown ones kept.
type Capabilities =
    {
        Top: bool
        User: bool
        /// SASL mechanisms offered (RFC 2449 §6.3, RFC 5034).
        Sasl: string list
        RespCodes: bool
        /// AUTH-RESP-CODE (RFC 3206 §6).
        AuthRespCode: bool
        LoginDelay: LoginDelayPolicy option
        Pipelining: bool
        Expire: ExpirePolicy option
        Uidl: bool
        Implementation: string option
        /// STLS (RFC 2595 §4).
        Stls: bool
        /// UTF8 (RFC 6856 §2): Some false for "UTF8", Some true for "UTF8 USER".
        Utf8: bool option
        /// LANG (RFC 6856 §3).
        Lang: bool
        /// Capabilities this version does not know, and known ones whose arguments did not parse:
        /// (tag as sent, arguments).
        Other: (string * string list) list
        /// The capability lines as received.
        Lines: string list
    }

    /// No capability known (before CAPA, or after CAPA -ERR).
    static member Empty =
        {
            Top = false
            User = false
            Sasl = []
            RespCodes = false
            AuthRespCode = false
            LoginDelay = None
            Pipelining = false
            Expire = None
            Uidl = false
            Implementation = None
            Stls = false
            Utf8 = None
            Lang = false
            Other = []
            Lines = []
        }

/// The mailbox as fixed at login (RFC 1939 §5: numbers and sizes do not change within a session).
type MailboxSnapshot =
    {
        /// Messages in the maildrop at login (STAT).
        Count: uint64
        /// Octets in the maildrop at login (STAT).
        Octets: uint64
        /// Messages marked deleted in this session; committed only by +OK to QUIT.
        Deleted: Set<uint64>
    }

/// What QUIT achieved (RFC 1939 §6).
type QuitOutcome =
    {
        Text: string
        /// True when QUIT ended a transaction state with +OK: the server entered UPDATE.
        UpdateCompleted: bool
        /// The messages whose deletion the server confirmed, in ascending order.
        DeletionsCommitted: uint64 list
    }

/// A successful answer to a request, with its parsed payload.
[<RequireQualifiedAccess>]
type Reply =
    /// A plain +OK (USER, DELE, NOOP, UTF8, LANG tag, STLS, ...).
    | Ok of StatusLine
    /// Login succeeded (PASS, APOP, RPOP, AUTH) and the mailbox snapshot is fixed.
    | LoggedIn of StatusLine * MailboxSnapshot
    | Stat of MaildropStat
    | Listing of ListEntry list
    | ListEntry of ListEntry
    | UidListing of UidEntry list
    | UidEntry of UidEntry
    | Capabilities of Capabilities
    | Languages of LanguageEntry list
    /// RETR or TOP: the body follows as BodyData events and ends with BodyEnded.
    | MessageFollows of StatusLine
    /// RSET: every deletion mark is cleared.
    | Reset of StatusLine
    | Quit of QuitOutcome
