namespace Pop3Functional.Simulator

open System
open System.Collections.Generic
open System.Runtime.CompilerServices
open System.Runtime.InteropServices

/// Presets that reproduce real POP3 servers (DESIGN §9, reference/peers.md §4). Capability lists
/// follow the Personality conventions: "STLS" is listed only when STLS is possible on the
/// connection, and "SASL" stands for "SASL" and the preset's SaslMechanisms (SCRAM-*-PLUS only over
/// TLS, where channel-binding data exists). SaslMechanisms holds only mechanisms the simulator
/// implements (SaslServer.mechanisms); where a real server offers more, the comment on the preset
/// says which are left out.
[<RequireQualifiedAccess>]
module Personalities =

    /// The simulator's own default: every extension on. APOP, USER/PASS and every SASL mechanism it
    /// implements (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1/256, their -PLUS variants over TLS, XOAUTH2 in
    /// both forms, OAUTHBEARER); TOP, UIDL, RESP-CODES, AUTH-RESP-CODE, PIPELINING, STLS, UTF8 and LANG (English
    /// and German, RFC 6856); EXPIRE NEVER; the maildrop is locked for the session and LOGIN-DELAY
    /// is neither enforced nor listed. Not a real server: the preset a test starts from when it
    /// wants everything available.
    let simulator: Personality =
        {
            Name = "simulator"
            Greeting = "Pop3Functional.Simulator ready {timestamp}"
            CapaSupported = true
            CapabilitiesBeforeLogin =
                [
                    "TOP"
                    "USER"
                    "UIDL"
                    "RESP-CODES"
                    "AUTH-RESP-CODE"
                    "PIPELINING"
                    "STLS"
                    "SASL"
                    "UTF8"
                    "LANG"
                    "EXPIRE NEVER"
                    "IMPLEMENTATION Pop3Functional.Simulator"
                ]
            // STLS is an AUTHORIZATION-state command (RFC 2595 §4); everything else stays listed.
            CapabilitiesAfterLogin =
                [
                    "TOP"
                    "USER"
                    "UIDL"
                    "RESP-CODES"
                    "AUTH-RESP-CODE"
                    "PIPELINING"
                    "SASL"
                    "UTF8"
                    "LANG"
                    "EXPIRE NEVER"
                    "IMPLEMENTATION Pop3Functional.Simulator"
                ]
            SaslMechanisms = SaslServer.mechanisms
            UserPass = true
            Apop = true
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = true
            Languages = [ "en", "English"; "de", "Deutsch" ]
            ResponseCodes = true
            InitialResponseRefused = []
            Continuation = ContinuationStyle.PlusSpace
            RetrStatus = RetrStatusStyle.Octets
            QuitText = "Pop3Functional.Simulator signing off."
            RewritesEightBitHeaders = false
            LocksMaildrop = true
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// Dovecot 2.3 as measured on Debian (DESIGN §9): greeting "Dovecot (Debian) ready." with an
    /// APOP timestamp (apop in auth_mechanisms); before login CAPA TOP UIDL RESP-CODES PIPELINING
    /// AUTH-RESP-CODE STLS USER and SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256; -ERR [IN-USE]
    /// for a second session (pop3_lock_session = yes, DESIGN §9); "+OK n octets" to RETR, "+ "
    /// continuations. After login the pop3 process lists only its fixed set (CAPA TOP UIDL
    /// RESP-CODES PIPELINING AUTH-RESP-CODE): USER, STLS and SASL belong to the login process
    /// (dovecot/core src/pop3/pop3-commands.c cmd_capa, src/pop3-login/client.c cmd_capa).
    let dovecot: Personality =
        {
            Name = "dovecot"
            Greeting = "Dovecot (Debian) ready. {timestamp}"
            CapaSupported = true
            CapabilitiesBeforeLogin =
                [
                    "CAPA"
                    "TOP"
                    "UIDL"
                    "RESP-CODES"
                    "PIPELINING"
                    "AUTH-RESP-CODE"
                    "STLS"
                    "USER"
                    "SASL"
                ]
            CapabilitiesAfterLogin = [ "CAPA"; "TOP"; "UIDL"; "RESP-CODES"; "PIPELINING"; "AUTH-RESP-CODE" ]
            SaslMechanisms = [ "PLAIN"; "LOGIN"; "CRAM-MD5"; "SCRAM-SHA-1"; "SCRAM-SHA-256" ]
            UserPass = true
            Apop = true
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = false
            Languages = []
            ResponseCodes = true
            InitialResponseRefused = []
            Continuation = ContinuationStyle.PlusSpace
            RetrStatus = RetrStatusStyle.Octets
            // Dovecot says "Logging out, messages deleted." when DELE was used; one text is kept.
            QuitText = "Logging out."
            RewritesEightBitHeaders = false
            LocksMaildrop = true
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// Courier 1.0 as measured (DESIGN §9): greeting "Hello there.", no APOP, no RESP-CODES; CAPA
    /// (status "Here's what I can do:") SASL, STLS, TOP, USER, LOGIN-DELAY 10, PIPELINING, UIDL,
    /// "UTF8 USER", "IMPLEMENTATION Courier Mail Server", the same after login (the Courier
    /// transcript in Core.Tests). LOGIN-DELAY 10 is advertised but not enforced, and a message
    /// whose header has raw 8-bit octets is rewritten unless the client sent UTF8, so RETR returns
    /// more octets than LIST announced (DESIGN §9).
    let courier: Personality =
        let capabilities =
            [
                "SASL"
                "STLS"
                "TOP"
                "USER"
                "LOGIN-DELAY 10"
                "PIPELINING"
                "UIDL"
                "UTF8 USER"
                "IMPLEMENTATION Courier Mail Server"
            ]

        {
            Name = "courier"
            Greeting = "Hello there."
            CapaSupported = true
            CapabilitiesBeforeLogin = capabilities
            CapabilitiesAfterLogin = capabilities
            // The real server lists "SASL CRAM-SHA256 CRAM-SHA1 CRAM-MD5 PLAIN LOGIN" (DESIGN §9);
            // the simulator implements neither CRAM-SHA1 nor CRAM-SHA256, so only the mechanisms
            // that work are listed, in Courier's order.
            SaslMechanisms = [ "CRAM-MD5"; "PLAIN"; "LOGIN" ]
            UserPass = true
            Apop = false
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = true
            Languages = []
            ResponseCodes = false
            InitialResponseRefused = []
            Continuation = ContinuationStyle.PlusSpace
            RetrStatus = RetrStatusStyle.Octets
            QuitText = "Bye-bye."
            RewritesEightBitHeaders = true
            // Not measured; Courier's own maildir locking is not modelled beyond RFC 1939 §8.
            LocksMaildrop = true
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// Cyrus 3.6 as measured (DESIGN §9): "+OK Message follows" to RETR (no size), a bare "+OK" to
    /// QUIT, never locks a POP3 mailbox. Greeting "host Cyrus POP3 version server ready " with the
    /// trailing space Cyrus leaves when it offers no APOP (cyrusimap/cyrus-imapd imap/pop3d.c,
    /// service_main). CAPA order from pop3d.c cmd_capa and the Cyrus transcript: SASL, STLS,
    /// EXPIRE NEVER, LOGIN-DELAY 0, TOP, UIDL, PIPELINING, RESP-CODES, AUTH-RESP-CODE, USER,
    /// IMPLEMENTATION; after login USER and STLS are gone (cmd_capa tests popd_authstate).
    let cyrus: Personality =
        let implementation = "IMPLEMENTATION Cyrus POP3 3.6.1-Debian-3.6.1-4"

        {
            Name = "cyrus"
            Greeting = "mail.example.org Cyrus POP3 3.6.1-Debian-3.6.1-4 server ready "
            CapaSupported = true
            CapabilitiesBeforeLogin =
                [
                    "SASL"
                    "STLS"
                    "EXPIRE NEVER"
                    "LOGIN-DELAY 0"
                    "TOP"
                    "UIDL"
                    "PIPELINING"
                    "RESP-CODES"
                    "AUTH-RESP-CODE"
                    "USER"
                    implementation
                ]
            // Cyrus lists SASL after login only over TLS; one list cannot depend on TLS, so the
            // plaintext form is kept.
            CapabilitiesAfterLogin =
                [
                    "EXPIRE NEVER"
                    "LOGIN-DELAY 0"
                    "TOP"
                    "UIDL"
                    "PIPELINING"
                    "RESP-CODES"
                    "AUTH-RESP-CODE"
                    implementation
                ]
            // Measured: "SCRAM-SHA-1 SCRAM-SHA-256" before STLS, and after it also the -PLUS
            // variants and PLAIN (DESIGN §9). The server lists -PLUS only over TLS by itself; PLAIN
            // stays in one list, so it is offered without TLS too. Real Cyrus binds to tls-unique
            // (DESIGN §9); the simulator binds to tls-server-end-point, the type a .NET server can
            // produce.
            SaslMechanisms =
                [
                    "SCRAM-SHA-1"
                    "SCRAM-SHA-256"
                    "SCRAM-SHA-1-PLUS"
                    "SCRAM-SHA-256-PLUS"
                    "PLAIN"
                ]
            UserPass = true
            // The measured greeting carries no timestamp.
            Apop = false
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = false
            Languages = []
            ResponseCodes = true
            InitialResponseRefused = []
            Continuation = ContinuationStyle.PlusSpace
            RetrStatus = RetrStatusStyle.MessageFollows
            QuitText = ""
            RewritesEightBitHeaders = false
            LocksMaildrop = false
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// Gmail (pop.gmail.com): greeting "Gpop ready for requests from <address> <session>";
    /// capabilities change at login (peers.md §4.4; MailKit UnitTests/Net/Pop3/Resources/gmail
    /// capa1.txt and capa2.txt): SASL before login only, PIPELINING after login only; USER,
    /// RESP-CODES, EXPIRE 0, LOGIN-DELAY 300 and the vendor token X-GOOGLE-RICO (peers.md §4.13);
    /// "+OK message follows" to RETR (MailKit gmail/retr1.txt; the simulator sends its one
    /// no-size text, "+OK Message follows."), "+ " continuations (peers.md §4.2).
    let gmail: Personality =
        {
            Name = "gmail"
            Greeting = "Gpop ready for requests from 198.51.100.23 x12mb3456789pab"
            CapaSupported = true
            CapabilitiesBeforeLogin =
                [
                    "USER"
                    "RESP-CODES"
                    "EXPIRE 0"
                    "LOGIN-DELAY 300"
                    "TOP"
                    "UIDL"
                    "X-GOOGLE-RICO"
                    "SASL"
                ]
            CapabilitiesAfterLogin =
                [
                    "USER"
                    "RESP-CODES"
                    "PIPELINING"
                    "EXPIRE 0"
                    "LOGIN-DELAY 300"
                    "TOP"
                    "UIDL"
                    "X-GOOGLE-RICO"
                ]
            // MailKit's recording (capa1.txt) has "SASL PLAIN XOAUTH2"; Google documents OAUTHBEARER
            // beside XOAUTH2 for its mail servers, so both are offered, after PLAIN. XOAUTH2 takes
            // the initial response and the two-line form; a bad token gets the JSON error challenge.
            SaslMechanisms = [ "PLAIN"; "XOAUTH2"; "OAUTHBEARER" ]
            UserPass = true
            Apop = false
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = false
            Languages = []
            ResponseCodes = true
            InitialResponseRefused = []
            Continuation = ContinuationStyle.PlusSpace
            RetrStatus = RetrStatusStyle.MessageFollows
            QuitText = "Farewell."
            RewritesEightBitHeaders = false
            // Not documented for Gmail; RFC 1939 §8 behaviour is kept.
            LocksMaildrop = true
            // LOGIN-DELAY 300 is advertised; no source shows Gmail enforcing it.
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// Outlook / Exchange: greeting "The Microsoft Exchange POP3 service is ready.", CAPA (bare
    /// "+OK" status) TOP, UIDL, SASL, USER, the same after login, no RESP-CODES (MailKit
    /// UnitTests/Net/Pop3/Resources/exchange/capa.txt and greeting.txt); a bare "+" for an empty
    /// SASL challenge (peers.md §4.2, MailKit exchange/plus.txt); XOAUTH2 in Microsoft's two-line
    /// form only ("Authenticate an IMAP, POP or SMTP connection using OAuth": AUTH XOAUTH2, "+",
    /// then the base64 message), an initial response answered "-ERR Protocol error. Connection is
    /// closed. 10" and a close (getmail6/getmail6#256).
    let exchange: Personality =
        let capabilities = [ "TOP"; "UIDL"; "SASL"; "USER" ]

        {
            Name = "exchange"
            Greeting = "The Microsoft Exchange POP3 service is ready."
            CapaSupported = true
            CapabilitiesBeforeLogin = capabilities
            CapabilitiesAfterLogin = capabilities
            // Exchange Online lists "SASL PLAIN XOAUTH2" (simonrob/email-oauth2-proxy#62,
            // kisli/vmime#267); on-premises Exchange "SASL NTLM GSSAPI PLAIN LOGIN" (MailKit
            // exchange/capa.txt), NTLM and GSSAPI not implemented here. XOAUTH2 only in Microsoft's
            // two-line form: an initial response is refused and the connection closed.
            SaslMechanisms = [ "PLAIN"; "XOAUTH2" ]
            UserPass = true
            Apop = false
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = false
            Languages = []
            ResponseCodes = false
            InitialResponseRefused = [ "XOAUTH2" ]
            Continuation = ContinuationStyle.BarePlus
            // Exchange answers RETR with a bare "+OK" (Outlook transcript).
            RetrStatus = RetrStatusStyle.Bare
            QuitText = "Microsoft Exchange Server POP3 server signing off."
            RewritesEightBitHeaders = false
            // Not documented for Exchange; RFC 1939 §8 behaviour is kept.
            LocksMaildrop = true
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// qmail-pop3d (qmail 1.03 / netqmail): the greeting is the APOP timestamp alone,
    /// "+OK <pid.time@host>" (qmail-popup.c pop3_greet); no CAPA ("-ERR authorization first" before
    /// login, "-ERR unimplemented" after); USER/PASS and APOP; TOP, UIDL and LAST; every other
    /// success is "+OK " with no text (qmail-pop3d.c okay); Maildir without a lock (qmail-pop3d.c).
    /// The qmail transcript in Core.Tests shows the same dialogue.
    let qmail: Personality =
        {
            Name = "qmail"
            Greeting = "{timestamp}"
            CapaSupported = false
            CapabilitiesBeforeLogin = []
            CapabilitiesAfterLogin = []
            SaslMechanisms = []
            UserPass = true
            Apop = true
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = false
            Languages = []
            ResponseCodes = false
            InitialResponseRefused = []
            Continuation = ContinuationStyle.PlusSpace
            // qmail sends "+OK " with no size (qmail-pop3d.c).
            RetrStatus = RetrStatusStyle.Bare
            // qmail sends "+OK " (a trailing space); the nearest form is a bare "+OK".
            QuitText = ""
            RewritesEightBitHeaders = false
            LocksMaildrop = false
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// A server that implements RFC 1939 and nothing else: CAPA is answered -ERR (no RFC 2449),
    /// no SASL, UTF8, LANG or response codes; USER/PASS and APOP, and the optional TOP and UIDL
    /// (RFC 1939 §7). Greeting, RETR status and QUIT text follow the RFC 1939 §10 example session.
    let rfc1939: Personality =
        {
            Name = "rfc1939"
            Greeting = "POP3 server ready {timestamp}"
            CapaSupported = false
            CapabilitiesBeforeLogin = []
            CapabilitiesAfterLogin = []
            SaslMechanisms = []
            UserPass = true
            Apop = true
            Rpop = false
            Top = true
            Uidl = true
            Utf8 = false
            Languages = []
            ResponseCodes = false
            InitialResponseRefused = []
            Continuation = ContinuationStyle.PlusSpace
            RetrStatus = RetrStatusStyle.Octets
            QuitText = "POP3 server signing off"
            RewritesEightBitHeaders = false
            // RFC 1939 §4: the server acquires an exclusive-access lock on the maildrop.
            LocksMaildrop = true
            EnforcedLoginDelay = TimeSpan.Zero
            PrivateCommands = Map.empty
        }

    /// All presets by name (lowercase names: "simulator", "dovecot", "courier", "cyrus", "gmail",
    /// "exchange", "qmail", "rfc1939").
    let all: (string * Personality) list =
        [
            "simulator", simulator
            "dovecot", dovecot
            "courier", courier
            "cyrus", cyrus
            "gmail", gmail
            "exchange", exchange
            "qmail", qmail
            "rfc1939", rfc1939
        ]

    /// Finds a preset by name, case-insensitively.
    let tryFind (name: string) : Personality option =
        all
        |> List.tryFind (fun (n, _) -> String.Equals(n, name, StringComparison.OrdinalIgnoreCase))
        |> Option.map snd

    /// Finds a preset by name, case-insensitively, for C#: true and the preset, or false.
    let TryFind (name: string, [<Out>] personality: byref<Personality>) : bool =
        match tryFind name with
        | Some p ->
            personality <- p
            true
        | None ->
            personality <- Unchecked.defaultof<Personality>
            false

    /// The preset names, in the order of all.
    let Names: IReadOnlyList<string> =
        Array.AsReadOnly(all |> List.map fst |> Array.ofList)

/// Changes one field of a Personality, for C# (F# can copy and update:
/// { Personalities.dovecot with Apop = false }). Each returns a new personality.
[<Extension; AbstractClass; Sealed>]
type PersonalityExtensions =
    /// This personality with another name.
    [<Extension>]
    static member WithName(personality: Personality, name: string) = { personality with Name = name }

    /// This personality with another greeting text ("{timestamp}" becomes the APOP timestamp).
    [<Extension>]
    static member WithGreeting(personality: Personality, greeting: string) =
        { personality with Greeting = greeting }

    /// This personality answering CAPA, or not ("-ERR", as an RFC 1939-only server does).
    [<Extension>]
    static member WithCapaSupported(personality: Personality, supported: bool) =
        { personality with
            CapaSupported = supported
        }

    /// This personality with other CAPA lines in the AUTHORIZATION state, in order.
    [<Extension>]
    static member WithCapabilitiesBeforeLogin(personality: Personality, [<ParamArray>] lines: string[]) =
        { personality with
            CapabilitiesBeforeLogin = List.ofArray lines
        }

    /// This personality with other CAPA lines in the TRANSACTION state, in order.
    [<Extension>]
    static member WithCapabilitiesAfterLogin(personality: Personality, [<ParamArray>] lines: string[]) =
        { personality with
            CapabilitiesAfterLogin = List.ofArray lines
        }

    /// This personality with other SASL mechanisms, in the order CAPA lists them (none: no AUTH).
    [<Extension>]
    static member WithSaslMechanisms(personality: Personality, [<ParamArray>] mechanisms: string[]) =
        { personality with
            SaslMechanisms = List.ofArray mechanisms
        }

    /// This personality accepting USER/PASS, or not.
    [<Extension>]
    static member WithUserPass(personality: Personality, enabled: bool) = { personality with UserPass = enabled }

    /// This personality accepting APOP, or not.
    [<Extension>]
    static member WithApop(personality: Personality, enabled: bool) = { personality with Apop = enabled }

    /// This personality accepting RPOP (RFC 1081), or not.
    [<Extension>]
    static member WithRpop(personality: Personality, enabled: bool) = { personality with Rpop = enabled }

    /// This personality accepting TOP, or not.
    [<Extension>]
    static member WithTop(personality: Personality, enabled: bool) = { personality with Top = enabled }

    /// This personality accepting UIDL, or not.
    [<Extension>]
    static member WithUidl(personality: Personality, enabled: bool) = { personality with Uidl = enabled }

    /// This personality accepting UTF8 (RFC 6856), or not.
    [<Extension>]
    static member WithUtf8(personality: Personality, enabled: bool) = { personality with Utf8 = enabled }

    /// This personality offering these languages to LANG, as (tag, description) pairs (none: no LANG).
    [<Extension>]
    static member WithLanguages(personality: Personality, [<ParamArray>] languages: struct (string * string)[]) =
        { personality with
            Languages = languages |> Array.map (fun struct (tag, name) -> tag, name) |> List.ofArray
        }

    /// This personality with response codes after -ERR, or without.
    [<Extension>]
    static member WithResponseCodes(personality: Personality, enabled: bool) =
        { personality with
            ResponseCodes = enabled
        }

    /// This personality refusing an initial response (RFC 5034 §4) to these mechanisms with
    /// "-ERR Protocol error" and a close, as Exchange Online does to XOAUTH2 (none: every initial
    /// response is accepted).
    [<Extension>]
    static member WithInitialResponseRefused(personality: Personality, [<ParamArray>] mechanisms: string[]) =
        { personality with
            InitialResponseRefused = mechanisms |> Array.map _.ToUpperInvariant() |> List.ofArray
        }

    /// This personality with another way of writing an empty SASL challenge.
    [<Extension>]
    static member WithContinuation(personality: Personality, style: ContinuationStyle) =
        { personality with
            Continuation = style
        }

    /// This personality with another text after +OK to RETR/TOP.
    [<Extension>]
    static member WithRetrStatus(personality: Personality, style: RetrStatusStyle) =
        { personality with RetrStatus = style }

    /// This personality with another text after +OK to QUIT (empty: a bare "+OK").
    [<Extension>]
    static member WithQuitText(personality: Personality, text: string) = { personality with QuitText = text }

    /// This personality rewriting messages with raw 8-bit headers (Courier), or not.
    [<Extension>]
    static member WithRewritesEightBitHeaders(personality: Personality, enabled: bool) =
        { personality with
            RewritesEightBitHeaders = enabled
        }

    /// This personality locking the maildrop for the session ([IN-USE] for a second one), or not.
    [<Extension>]
    static member WithLocksMaildrop(personality: Personality, enabled: bool) =
        { personality with
            LocksMaildrop = enabled
        }

    /// This personality answering a private extension command (RFC 2449 §8) in both states:
    /// single-line "+OK", or with `multiline` "+OK" and these lines.
    [<Extension>]
    static member WithPrivateCommand
        (personality: Personality, keyword: string, multiline: bool, [<ParamArray>] lines: string[])
        =
        { personality with
            PrivateCommands =
                personality.PrivateCommands.Add(
                    keyword.ToUpperInvariant(),
                    (if multiline then Some(List.ofArray lines) else None)
                )
        }

    /// This personality enforcing this minimum time between logins ([LOGIN-DELAY]; zero: none).
    [<Extension>]
    static member WithEnforcedLoginDelay(personality: Personality, delay: TimeSpan) =
        { personality with
            EnforcedLoginDelay = delay
        }
