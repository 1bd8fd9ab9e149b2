namespace Pop3Functional.Core

open System
open System.Security.Cryptography

/// What a caller can ask of a POP3 session. Arguments are checked when the request is submitted;
/// a bad one is refused as a UsageError before any byte exists.
[<RequireQualifiedAccess>]
type Request =
    /// USER name (RFC 1939 §7).
    | User of name: string
    /// PASS secret (RFC 1939 §7). Refused over plaintext unless the caller opted in.
    | Pass of password: Secret
    /// APOP name digest, the digest computed from the greeting's timestamp (RFC 1939 §7).
    | Apop of name: string * secret: Secret
    /// RPOP user (RFC 1081), for poplib parity; sent after USER.
    | Rpop of user: string
    /// STAT (RFC 1939 §5).
    | Stat
    /// LIST [msg] (RFC 1939 §5).
    | List of message: uint64 option
    /// RETR msg (RFC 1939 §5): the body streams as BodyData events.
    | Retr of message: uint64
    /// DELE msg (RFC 1939 §5): marks the message; QUIT commits.
    | Dele of message: uint64
    /// NOOP (RFC 1939 §5).
    | Noop
    /// RSET (RFC 1939 §5): unmarks every deleted message.
    | Rset
    /// QUIT (RFC 1939 §6): commits deletions when sent in the transaction state.
    | Quit
    /// TOP msg n (RFC 1939 §7): headers and the first n body lines.
    | Top of message: uint64 * lines: uint64
    /// UIDL [msg] (RFC 1939 §7).
    | Uidl of message: uint64 option
    /// CAPA (RFC 2449 §5).
    | Capa
    /// STLS (RFC 2595 §4): upgrade to TLS. The core asks the shell for the handshake.
    | Stls
    /// UTF8 (RFC 6856 §2), authorization state only.
    | Utf8
    /// LANG [tag] (RFC 6856 §3): list languages, or choose one.
    | Lang of tag: string option
    /// AUTH mechanism [initial-response] (RFC 5034 §4); the response is a secret.
    | Auth of mechanism: string * initialResponse: Secret option
    /// AUTH with a mechanism the core runs itself (RFC 5034 §4): it sends the initial response,
    /// answers every challenge and checks the server's proof (SCRAM) before the login succeeds.
    /// The session supplies the channel-binding data; the caller the nonce, host and port.
    | Authenticate of mechanism: string * credentials: SaslCredentials * inputs: SaslInputs
    /// A command the core has no request for: a private or later extension (RFC 2449 §8
    /// reserves keywords starting with X for private use). Its reply is a status line, followed
    /// by lines up to "." when `multiline` is set and the status is +OK.
    | Extension of keyword: string * arguments: string list * multiline: bool

    /// The command keyword this request sends.
    member this.Keyword =
        match this with
        | User _ -> "USER"
        | Pass _ -> "PASS"
        | Apop _ -> "APOP"
        | Rpop _ -> "RPOP"
        | Stat -> "STAT"
        | List _ -> "LIST"
        | Retr _ -> "RETR"
        | Dele _ -> "DELE"
        | Noop -> "NOOP"
        | Rset -> "RSET"
        | Quit -> "QUIT"
        | Top _ -> "TOP"
        | Uidl _ -> "UIDL"
        | Capa -> "CAPA"
        | Stls -> "STLS"
        | Utf8 -> "UTF8"
        | Lang _ -> "LANG"
        | Auth _
        | Authenticate _ -> "AUTH"
        | Extension(keyword, _, _) -> if isNull keyword then "" else keyword.ToUpperInvariant()

    /// The keyword the transition table knows the request by: every extension is one row.
    member this.TableKeyword =
        match this with
        | Extension _ -> "extension"
        | _ -> this.Keyword

    /// The keywords the core has its own requests for: an extension may not use them, since the
    /// core could not follow what they change (STLS, a login, QUIT) or how their reply is framed.
    static member Reserved =
        set
            [
                "USER"
                "PASS"
                "APOP"
                "RPOP"
                "STAT"
                "LIST"
                "RETR"
                "DELE"
                "NOOP"
                "RSET"
                "QUIT"
                "TOP"
                "UIDL"
                "CAPA"
                "STLS"
                "UTF8"
                "LANG"
                "AUTH"
            ]

/// A command line ready to send, with the form that may be logged (secrets replaced).
type EncodedCommand =
    {
        /// The whole line to write, CRLF included. It may hold a secret: never log it, log LogText.
        Bytes: ReadOnlyMemory<byte>
        /// The line without CRLF, with every secret replaced by ********; safe to log.
        LogText: string
    }

/// The wire codec for commands (RFC 1939 §3, RFC 2449 §3–4, RFC 5034 §4).
[<RequireQualifiedAccess>]
module Command =
    let private refuse kind keyword message = Error(Err.usage kind keyword message)

    /// Checks a token argument (user name, language tag): non-empty, no space, CR, LF or NUL.
    let validateToken (keyword: string) (what: string) (value: string) =
        if isNull value || value.Length = 0 then
            refuse UsageErrorKind.InvalidArgument keyword $"{keyword}: the {what} is empty"
        elif Bytes.hasLineBreakOrNul value then
            refuse
                UsageErrorKind.InvalidArgument
                keyword
                $"{keyword}: the {what} contains CR, LF or NUL, which could inject a command"
        elif value.Contains ' ' || value.Contains '\t' then
            refuse
                UsageErrorKind.InvalidArgument
                keyword
                $"{keyword}: the {what} contains a space; POP3 arguments are separated by spaces"
        elif value |> Seq.exists (fun c -> c < ' ' || c = '\127') then
            // RFC 2449 §3: a parameter is VCHARs; a control character (ESC, DEL...) is never one.
            refuse UsageErrorKind.InvalidArgument keyword $"{keyword}: the {what} contains a control character"
        else
            Ok value

    /// Checks a secret argument: non-empty, no CR, LF or NUL (spaces are allowed in PASS, RFC 1939 §7).
    let validateSecret (keyword: string) (what: string) (value: Secret) =
        if isNull value then
            refuse UsageErrorKind.InvalidArgument keyword $"{keyword}: the {what} is missing (null)"
        elif value.IsDisposed then
            refuse UsageErrorKind.InvalidArgument keyword $"{keyword}: the {what} was disposed before it was sent"
        elif value.Length = 0 then
            refuse UsageErrorKind.InvalidArgument keyword $"{keyword}: the {what} is empty"
        elif value.HasLineBreakOrNul then
            refuse
                UsageErrorKind.InvalidArgument
                keyword
                $"{keyword}: the {what} contains CR, LF or NUL, which could inject a command"
        else
            Ok value

    /// Checks a message number: 1 or more (RFC 1939 §3: message numbers start at 1).
    let validateMessageNumber (keyword: string) (n: uint64) =
        if n = 0UL then
            refuse UsageErrorKind.NoSuchMessage keyword $"{keyword}: message numbers start at 1, not 0"
        else
            Ok n

    /// Checks a SASL mechanism name: 1–20 of A–Z, 0–9, '-', '_' (RFC 4422 §3.1).
    let validateMechanism (value: string) =
        let ok (c: char) =
            (c >= 'A' && c <= 'Z')
            || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9')
            || c = '-'
            || c = '_'

        if
            isNull value
            || value.Length = 0
            || value.Length > 20
            || not (Seq.forall ok value)
        then
            refuse
                UsageErrorKind.InvalidArgument
                "AUTH"
                "AUTH: a SASL mechanism name is 1 to 20 of A-Z, 0-9, '-' and '_' (RFC 4422 §3.1)"
        else
            Ok value

    /// Checks a LANG tag or range: letters, digits, '-' and '*' (RFC 6856 §3).
    let validateLanguage (value: string) =
        match validateToken "LANG" "language tag" value with
        | Error e -> Error e
        | Ok v when v |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '-' || c = '*') -> Ok v
        | Ok _ ->
            refuse
                UsageErrorKind.InvalidArgument
                "LANG"
                "LANG: a language tag holds only letters, digits, '-' and '*' (RFC 6856 §3)"

    /// The APOP digest: lowercase hex MD5 of timestamp followed by the secret (RFC 1939 §7).
    let apopDigest (timestamp: string) (secret: Secret) =
        let ts = Bytes.ascii timestamp
        let pw = secret.RevealUtf8Bytes()
        let input = Array.append ts pw
        let hash = MD5.HashData(input)
        Array.Clear pw
        Array.Clear input
        Convert.ToHexStringLower hash

    let private line (limit: int) (keyword: string) (parts: byte[] list) (logText: string) =
        let total = (parts |> List.sumBy _.Length) + 2

        if total > limit then
            Error(
                Err.usage
                    UsageErrorKind.CommandTooLong
                    keyword
                    $"{keyword}: the command line would be {total} octets; the limit is {limit} (RFC 2449 §4)"
            )
        else
            let bytes = Array.zeroCreate<byte> total
            let mutable at = 0

            for p in parts do
                p.CopyTo(bytes, at)
                at <- at + p.Length

            bytes[at] <- Bytes.CR
            bytes[at + 1] <- Bytes.LF

            Ok
                {
                    Bytes = ReadOnlyMemory bytes
                    LogText = logText
                }

    let private sp = [| Bytes.Space |]
    let private num (n: uint64) = string n

    /// Encodes a plain command made of a keyword and public arguments.
    let plain (limit: int) (keyword: string) (args: string list) =
        let text = String.Join(" ", keyword :: args)
        line limit keyword [ Bytes.utf8 text ] text

    /// Encodes a command whose last argument is secret (PASS, APOP digest, AUTH initial response).
    let withSecret (limit: int) (keyword: string) (publicArgs: string list) (secret: byte[]) =
        let head = String.Join(" ", keyword :: publicArgs)
        line limit keyword [ Bytes.utf8 head; sp; secret ] (head + " ********")

    /// Encodes a SASL continuation line: base64 of the response, or "*" to cancel (RFC 5034 §4).
    /// RFC 5034 §4: continuation lines are bounded by the mechanism, not the 255-octet rule.
    let saslLine (payload: byte[] option) =
        match payload with
        | None -> line Int32.MaxValue "AUTH" [ Bytes.ascii "*" ] "*"
        | Some p -> line Int32.MaxValue "AUTH" [ Bytes.ascii (Convert.ToBase64String p) ] "********"

    /// AUTH mechanism [initial-response] on one line (RFC 5034 §4): an empty response is sent as "=".
    let authLine (limit: int) (mechanism: string) (initialResponse: byte[] option) =
        match initialResponse with
        | None -> plain limit "AUTH" [ mechanism ]
        | Some [||] -> withSecret limit "AUTH" [ mechanism ] (Bytes.ascii "=")
        | Some ir -> withSecret limit "AUTH" [ mechanism ] (Bytes.ascii (Convert.ToBase64String ir))

    /// AUTH mechanism [initial-response] (RFC 5034 §4): an empty response is sent as "="; one that
    /// would not fit in the command-line limit goes in the first continuation instead, returned
    /// here as the second line.
    let authLines (limit: int) (mechanism: string) (initialResponse: byte[] option) =
        match authLine limit mechanism initialResponse with
        | Ok line -> Ok(line, None)
        | Error e when e.Kind = UsageErrorKind.CommandTooLong && initialResponse.IsSome ->
            plain limit "AUTH" [ mechanism ]
            |> Result.bind (fun line -> saslLine initialResponse |> Result.map (fun later -> line, Some later))
        | Error e -> Error e

    /// The bytes of AUTH's initial response, checked (None when there is none).
    let authInitialResponse (initialResponse: Secret option) =
        match initialResponse with
        | None -> Ok None
        | Some ir when isNull ir || ir.IsDisposed ->
            refuse UsageErrorKind.InvalidArgument "AUTH" "AUTH: the initial response is null or was disposed"
        | Some ir -> Ok(Some(ir.RevealUtf8Bytes()))

    /// Checks an extension's keyword: three or four ASCII letters or digits (RFC 1939 §3), not one
    /// the core has its own request for.
    let validateExtensionKeyword (keyword: string) =
        if isNull keyword || keyword.Length < 3 || keyword.Length > 4 then
            refuse
                UsageErrorKind.InvalidArgument
                (if isNull keyword then "" else keyword)
                "an extension keyword is three or four characters (RFC 1939 §3)"
        elif not (keyword |> Seq.forall Char.IsAsciiLetterOrDigit) then
            refuse
                UsageErrorKind.InvalidArgument
                keyword
                "an extension keyword is ASCII letters and digits only (RFC 1939 §3)"
        elif Request.Reserved.Contains(keyword.ToUpperInvariant()) then
            refuse
                UsageErrorKind.InvalidArgument
                keyword
                $"{keyword.ToUpperInvariant()} has its own request; an extension command cannot send it (the core must follow its effect on the session)"
        else
            Ok(keyword.ToUpperInvariant())

    /// Encodes a request that needs no session context (all but APOP, which needs the timestamp).
    /// Checks every argument first.
    let encode (limit: int) (request: Request) : Result<EncodedCommand, UsageError> =
        let k = request.Keyword

        match request with
        | Request.User name -> validateToken k "user name" name |> Result.bind (fun n -> plain limit k [ n ])
        | Request.Rpop user -> validateToken k "user name" user |> Result.bind (fun u -> plain limit k [ u ])
        | Request.Pass pw ->
            validateSecret k "password" pw
            |> Result.bind (fun pw -> withSecret limit k [] (pw.RevealUtf8Bytes()))
        | Request.Apop(name, secret) ->
            validateToken k "user name" name
            |> Result.bind (fun _ -> validateSecret k "secret" secret)
            |> Result.bind (fun _ ->
                refuse
                    UsageErrorKind.ApopUnavailable
                    k
                    "APOP needs the greeting's timestamp; encode it with Command.apop")
        | Request.Stat
        | Request.Noop
        | Request.Rset
        | Request.Quit
        | Request.Capa
        | Request.Stls
        | Request.Utf8 -> plain limit k []
        | Request.List None
        | Request.Uidl None
        | Request.Lang None -> plain limit k []
        | Request.List(Some n)
        | Request.Uidl(Some n)
        | Request.Retr n
        | Request.Dele n -> validateMessageNumber k n |> Result.bind (fun n -> plain limit k [ num n ])
        | Request.Top(n, lines) ->
            validateMessageNumber k n
            |> Result.bind (fun n -> plain limit k [ num n; num lines ])
        | Request.Lang(Some tag) -> validateLanguage tag |> Result.bind (fun t -> plain limit k [ t ])
        | Request.Extension(keyword, arguments, _) ->
            validateExtensionKeyword keyword
            |> Result.bind (fun k ->
                if isNull (box arguments) then
                    refuse UsageErrorKind.InvalidArgument k $"{k}: the argument list is missing (null)"
                else
                    let rec check (checkedArgs: string list) (rest: string list) =
                        match rest with
                        | [] -> plain limit k (List.rev checkedArgs)
                        | a :: more ->
                            validateToken k "argument" a
                            |> Result.bind (fun a -> check (a :: checkedArgs) more)

                    check [] arguments)
        | Request.Auth(mech, ir) ->
            validateMechanism mech
            |> Result.bind (fun m -> authInitialResponse ir |> Result.bind (fun bytes -> authLine limit m bytes))
        | Request.Authenticate(mech, _, _) ->
            validateMechanism mech
            |> Result.bind (fun _ ->
                refuse
                    UsageErrorKind.WrongState
                    k
                    "AUTH with a mechanism the core runs needs a session (TLS state, channel binding); submit it to one")

    /// Encodes APOP with the digest of the greeting's timestamp and the secret.
    let apop (limit: int) (timestamp: string) (name: string) (secret: Secret) =
        validateToken "APOP" "user name" name
        |> Result.bind (fun _ -> validateSecret "APOP" "secret" secret)
        |> Result.bind (fun s -> withSecret limit "APOP" [ name ] (Bytes.ascii (apopDigest timestamp s)))
