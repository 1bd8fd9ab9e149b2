namespace Pop3Functional.Core

/// The first line of a reply: +OK or -ERR, an optional response code and the text.
type StatusLine =
    {
        /// True for +OK, false for -ERR (RFC 1939 §3); no other status is ever success.
        IsOk: bool
        /// The bracketed code at the start of the text (RFC 2449 §8), when present and well formed.
        Code: ResponseCode option
        /// The text after the status (and after the code, when there is one).
        Text: string
    }

/// The server's greeting (RFC 1939 §4).
type Greeting =
    {
        /// The text after the status (and after the code, when there is one).
        Text: string
        /// The bracketed response code, when the greeting had one (RFC 2449 §8).
        Code: ResponseCode option
        /// The APOP timestamp, only when it is a strict msg-id "<local@domain>" of printable ASCII
        /// (RFC 1939 §7; CVE-2007-1558). Anything else means no APOP.
        ApopTimestamp: string option
    }

/// The answer to STAT (RFC 1939 §5).
type MaildropStat =
    {
        /// Messages in the maildrop, deleted ones excluded (RFC 1939 §5).
        Count: uint64
        /// The maildrop's size in octets, deleted messages excluded (RFC 1939 §5).
        Octets: uint64
    }

/// One line of a LIST answer (RFC 1939 §5).
type ListEntry =
    {
        /// The message number: 1 up to the snapshot's count (RFC 1939 §3).
        Number: uint64
        /// The size in octets as the server reports it (RFC 1939 §5); what RETR delivers can differ.
        Octets: uint64
    }

/// One line of a UIDL answer (RFC 1939 §7).
type UidEntry =
    {
        /// The message number: 1 up to the snapshot's count (RFC 1939 §3).
        Number: uint64
        /// The message's unique id, stable across sessions; use it to remember what was fetched.
        Uid: MessageUid
    }

/// One line of a LANG listing (RFC 6856 §3).
type LanguageEntry =
    {
        /// The language tag to pass to LANG (RFC 5646).
        Tag: string
        /// The server's description of the language, or "" when it sent none.
        Description: string
    }

/// EXPIRE: how long the server keeps messages (RFC 2449 §6.7).
type ExpirePolicy =
    {
        /// Days, or None for NEVER.
        Days: uint64 option
        /// True when the value may differ per user (the USER suffix before login).
        PerUser: bool
    }

/// LOGIN-DELAY: the minimum seconds between logins (RFC 2449 §6.5).
type LoginDelayPolicy =
    {
        /// The minimum seconds between logins; logging in sooner may fail with [LOGIN-DELAY].
        Seconds: uint64
        /// True when the value may differ per user (the USER suffix before login).
        PerUser: bool
    }

/// The answer to CAPA, every RFC 2449 capability typed, plus STLS, UTF8, LANG and unknown ones kept.
type Capabilities =
    {
        /// TOP is supported (RFC 2449 §6.1).
        Top: bool
        /// USER/PASS login is supported (RFC 2449 §6.2).
        User: bool
        /// SASL mechanisms offered (RFC 2449 §6.3, RFC 5034).
        Sasl: string list
        /// Response codes in brackets may be sent (RFC 2449 §6.4).
        RespCodes: bool
        /// AUTH-RESP-CODE (RFC 3206 §6): a login refused for bad credentials carries [AUTH].
        AuthRespCode: bool
        /// LOGIN-DELAY (RFC 2449 §6.5), when advertised.
        LoginDelay: LoginDelayPolicy option
        /// PIPELINING (RFC 2449 §6.6): commands may be sent without waiting for each reply.
        Pipelining: bool
        /// EXPIRE (RFC 2449 §6.7), when advertised: messages may vanish even if never deleted.
        Expire: ExpirePolicy option
        /// UIDL is supported (RFC 2449 §6.8).
        Uidl: bool
        /// The server's IMPLEMENTATION text (RFC 2449 §6.9), for diagnostics only.
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
        /// Messages marked deleted in this session, as later requests see them: a DELE counts from
        /// its submission (and RSET clears) until the server refuses it. Committed only by +OK to QUIT.
        Deleted: Set<uint64>
        /// The marks the server has acknowledged (+OK to DELE, RSET): what QUIT commits.
        Confirmed: Set<uint64>
    }

/// What QUIT achieved (RFC 1939 §6).
type QuitOutcome =
    {
        /// The text of the server's reply to QUIT.
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
    /// STAT: count and size, deleted messages excluded (RFC 1939 §5).
    | Stat of MaildropStat
    /// LIST without argument: every message not marked deleted, checked against the snapshot.
    | Listing of ListEntry list
    /// LIST msg: that one message.
    | ListEntry of ListEntry
    /// UIDL without argument: every message not marked deleted (RFC 1939 §7).
    | UidListing of UidEntry list
    /// UIDL msg: that one message.
    | UidEntry of UidEntry
    /// CAPA: the capabilities now in force (RFC 2449 §5).
    | Capabilities of Capabilities
    /// LANG without argument: the languages the server offers (RFC 6856 §3).
    | Languages of LanguageEntry list
    /// RETR or TOP: the body follows as BodyData events and ends with BodyEnded.
    | MessageFollows of StatusLine
    /// RSET: every deletion mark is cleared.
    | Reset of StatusLine
    /// QUIT: whether the server entered UPDATE and which deletions it committed (RFC 1939 §6).
    | Quit of QuitOutcome
    /// An extension command: its status line and, for a multi-line one, its lines (dot-unstuffed).
    | Extension of StatusLine * lines: string list
