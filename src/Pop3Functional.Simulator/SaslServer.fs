namespace Pop3Functional.Simulator

open System
open System.Security.Cryptography
open System.Text

/// What the server needs from its environment to run a mechanism; all pure inputs.
type SaslContext =
    {
        /// The password of an account (None: no such user).
        LookupPassword: string -> string option
        /// Fresh random printable ASCII (no ',' and no spaces), at least 16 characters: the SCRAM server
        /// nonce part (RFC 5802 §5.1) and the CRAM-MD5 challenge's random part (RFC 2195 §2).
        Nonce: string
        /// The server's host name (CRAM-MD5 challenge "&lt;random@host&gt;", RFC 2195 §2).
        Hostname: string
        /// The SCRAM salt (RFC 5802 §5.1).
        ScramSalt: byte[]
        /// The SCRAM iteration count (RFC 5802 §5.1; 4096 or more, RFC 7677 §4).
        ScramIterations: int
        /// The OAuth 2.0 bearer tokens an account accepts (empty: none, or no such user), for XOAUTH2
        /// and OAUTHBEARER.
        LookupTokens: string -> string list
        /// The connection's tls-server-end-point channel-binding data (RFC 5929 §4.1) for the
        /// SCRAM-*-PLUS mechanisms; None without TLS.
        ChannelBinding: byte[] option
        /// True when this connection offers a SCRAM-*-PLUS mechanism: a SCRAM client that says "y"
        /// (it could bind but thinks the server cannot) then sees a downgrade (RFC 5802 §6).
        ChannelBindingAdvertised: bool
    }

/// The hash a SCRAM mechanism is built on.
type internal ScramHash =
    /// SCRAM-SHA-1 (RFC 5802).
    | Sha1
    /// SCRAM-SHA-256 (RFC 7677).
    | Sha256

/// What the server remembers of a SCRAM exchange between its first and final messages: everything
/// AuthMessage is made of (RFC 5802 §3) and what client-final-message must repeat (§7).
type internal ScramPending =
    {
        /// The hash of the mechanism.
        Hash: ScramHash
        /// The authentication identity, "=2C"/"=3D" decoded.
        User: string
        /// True for SCRAM-*-PLUS (channel binding, RFC 5802 §6).
        Plus: bool
        /// The gs2-header as sent ("n,,", "y,," or "p=tls-server-end-point,,", with an optional
        /// authzid), which c= must repeat.
        Gs2Header: string
        /// The channel-binding data c= must carry after the gs2-header (empty without binding).
        BindingData: byte[]
        /// client-first-message-bare, as sent.
        ClientFirstBare: string
        /// server-first-message, as sent.
        ServerFirst: string
        /// The client nonce followed by the server's.
        CombinedNonce: string
    }

/// The opaque state of one exchange in progress.
type SaslServerState =
    private
    /// PLAIN without an initial response: the empty challenge was sent (RFC 4616 §2).
    | PlainAwaitingMessage
    /// LOGIN: "Username:" was sent.
    | LoginAwaitingUser
    /// LOGIN: "Password:" was sent for this user (raw octets, checked with the password).
    | LoginAwaitingPassword of user: byte[]
    /// CRAM-MD5: this challenge was sent (RFC 2195 §2).
    | CramAwaitingDigest of challenge: byte[]
    /// SCRAM without an initial response: the empty challenge was sent; client-first-message comes
    /// next (plus: the -PLUS variant).
    | ScramAwaitingClientFirst of ScramHash * plus: bool
    /// SCRAM: server-first-message was sent; client-final-message comes next.
    | ScramAwaitingClientFinal of ScramPending
    /// SCRAM: server-final-message went out as a challenge; the client's empty response ends it
    /// (RFC 5034 §4).
    | ScramAwaitingAck of user: string
    /// XOAUTH2 without an initial response: the empty challenge was sent (Microsoft's two-line form).
    | XOAuth2AwaitingMessage
    /// XOAUTH2: the error challenge was sent; the client must answer with an empty line.
    | XOAuth2AwaitingErrorAck
    /// OAUTHBEARER without an initial response: the empty challenge was sent.
    | OAuthBearerAwaitingMessage
    /// OAUTHBEARER: the error challenge was sent; the client must answer %x01 (RFC 7628 §3.2.2).
    | OAuthBearerAwaitingErrorAck
    /// A fault plan's exchange that never ends: this many challenges were sent.
    | Stalling of round: int

/// The result of one step.
[<RequireQualifiedAccess>]
type SaslServerStep =
    /// Send this challenge (raw octets; the caller base64-encodes it into "+ ..."); the exchange goes
    /// on with this state.
    | Challenge of SaslServerState * byte[]
    /// Authenticated as this account (the authentication identity: the user whose maildrop opens).
    | Succeeded of user: string
    /// Authentication failed (wrong password, no such user, malformed message); the text is for the
    /// -ERR line and holds no secret.
    | Failed of reason: string

/// SASLprep (RFC 4013), the stringprep profile (RFC 3454) SCRAM applies to passwords (RFC 5802 §2.2)
/// and PLAIN recommends (RFC 4616 §2). Mapping, NFKC and prohibition as the RFC says; the bidi rule
/// (RFC 3454 §6) is not checked, and Unicode is .NET's rather than 3.2 (unassigned code points pass,
/// as for a "query" string, RFC 3454 §7).
[<RequireQualifiedAccess>]
module internal SaslPrep =
    /// Non-ASCII space characters (RFC 3454 C.1.2), mapped to SPACE (RFC 4013 §2.1).
    let private isNonAsciiSpace (c: int) =
        c = 0xA0
        || c = 0x1680
        || (c >= 0x2000 && c <= 0x200B)
        || c = 0x202F
        || c = 0x205F
        || c = 0x3000

    /// "Commonly mapped to nothing" (RFC 3454 B.1), removed (RFC 4013 §2.1). U+200B is in C.1.2 as
    /// well; it is removed, as the common implementations (Python's stringprep users, libidn) do.
    let private mapsToNothing (c: int) =
        c = 0xAD
        || c = 0x34F
        || c = 0x1806
        || (c >= 0x180B && c <= 0x180D)
        || (c >= 0x200B && c <= 0x200D)
        || c = 0x2060
        || (c >= 0xFE00 && c <= 0xFE0F)
        || c = 0xFEFF

    /// The prohibited output (RFC 4013 §2.3: RFC 3454 C.1.2, C.2.1–C.9).
    let private isProhibited (c: int) =
        isNonAsciiSpace c // C.1.2
        || c < 0x20
        || c = 0x7F // C.2.1
        || (c >= 0x80 && c <= 0x9F) // C.2.2
        || c = 0x6DD
        || c = 0x70F
        || c = 0x180E
        || c = 0x200C
        || c = 0x200D
        || c = 0x2028
        || c = 0x2029
        || (c >= 0x2060 && c <= 0x2063)
        || (c >= 0x206A && c <= 0x206F) // C.2.2 and C.8
        || c = 0xFEFF
        || (c >= 0xFFF9 && c <= 0xFFFD) // C.2.2 and C.6
        || (c >= 0x1D173 && c <= 0x1D17A)
        || (c >= 0xE000 && c <= 0xF8FF) // C.3
        || (c >= 0xF0000 && c <= 0xFFFFD)
        || (c >= 0x100000 && c <= 0x10FFFD)
        || (c >= 0xFDD0 && c <= 0xFDEF) // C.4
        || (c &&& 0xFFFE) = 0xFFFE
        || (c >= 0xD800 && c <= 0xDFFF) // C.5
        || (c >= 0x2FF0 && c <= 0x2FFB) // C.7
        || c = 0x340
        || c = 0x341
        || c = 0x200E
        || c = 0x200F
        || (c >= 0x202A && c <= 0x202E) // C.8
        || c = 0xE0001
        || (c >= 0xE0020 && c <= 0xE007F) // C.9

    /// The code points of a string; None when it holds a lone surrogate (not a character, C.5).
    let private codePoints (s: string) =
        let points = ResizeArray<int>(s.Length)
        let mutable index = 0
        let mutable valid = true

        while valid && index < s.Length do
            let mutable rune = Rune()

            if Rune.TryGetRuneAt(s, index, &rune) then
                points.Add rune.Value
                index <- index + rune.Utf16SequenceLength
            else
                valid <- false

        if valid then Some points else None

    let private ofCodePoints (points: int seq) =
        let builder = StringBuilder()

        for p in points do
            builder.Append(Rune(p).ToString()) |> ignore

        builder.ToString()

    /// The prepared string, or None when it holds a prohibited character. Prohibited characters are
    /// refused before NFKC too: .NET's normalization throws on some of them (non-characters).
    let prepare (s: string) : string option =
        match codePoints s with
        | None -> None
        | Some points ->
            let mapped =
                points
                |> Seq.filter (mapsToNothing >> not)
                |> Seq.map (fun c -> if isNonAsciiSpace c then 0x20 else c)
                |> Array.ofSeq

            if mapped |> Array.exists isProhibited then
                None
            else
                let normalized = (ofCodePoints mapped).Normalize(NormalizationForm.FormKC)

                match codePoints normalized with
                | Some output when not (output |> Seq.exists isProhibited) -> Some normalized
                | _ -> None

/// The server side of the SASL mechanisms AUTH offers (RFC 5034).
[<RequireQualifiedAccess>]
module SaslServer =
    /// The mechanisms implemented here, uppercase.
    let mechanisms =
        [
            "PLAIN"
            "LOGIN"
            "CRAM-MD5"
            "SCRAM-SHA-1"
            "SCRAM-SHA-256"
            "SCRAM-SHA-1-PLUS"
            "SCRAM-SHA-256-PLUS"
            "XOAUTH2"
            "OAUTHBEARER"
        ]

    /// The only channel-binding type the simulator supplies: tls-server-end-point (RFC 5929 §4),
    /// which a server can derive from its certificate on every TLS version.
    [<Literal>]
    let ChannelBindingType = "tls-server-end-point"

    /// One text for a wrong password and an unknown user alike, so the reply does not tell which
    /// accounts exist.
    let private rejected = "authentication failed"

    let private fail (reason: string) = SaslServerStep.Failed reason

    /// Strict UTF-8 (RFC 3629), or None: every mechanism here carries UTF-8 text.
    let private utf8 (bytes: byte[]) =
        if Text.Unicode.Utf8.IsValid(ReadOnlySpan bytes) then
            Some(Encoding.UTF8.GetString bytes)
        else
            None

    let private bytesOf (s: string) = Encoding.UTF8.GetBytes s

    /// Password equality after SASLprep of both sides (RFC 4616 §2: the presented and the stored
    /// password are prepared; when preparation fails or gives an empty string, verification fails).
    let private passwordMatches (stored: string) (presented: string) =
        match SaslPrep.prepare stored, SaslPrep.prepare presented with
        | Some s, Some p when s.Length > 0 ->
            CryptographicOperations.FixedTimeEquals(ReadOnlySpan(bytesOf s), ReadOnlySpan(bytesOf p))
        | _ -> false

    let private checkPassword (context: SaslContext) (user: string) (presented: string) =
        match context.LookupPassword user with
        | Some stored when passwordMatches stored presented -> SaslServerStep.Succeeded user
        | _ -> fail rejected

    // --- PLAIN (RFC 4616) ---

    /// message = [authzid] NUL authcid NUL passwd (RFC 4616 §2), all UTF-8 without NUL.
    let private plainMessage (context: SaslContext) (message: byte[]) =
        let nuls =
            message
            |> Array.indexed
            |> Array.filter (fun (_, b) -> b = 0uy)
            |> Array.map fst

        match nuls with
        | [| first; second |] ->
            let authzid = utf8 message[.. first - 1]
            let authcid = utf8 message[first + 1 .. second - 1]
            let passwd = utf8 message[second + 1 ..]

            match authzid, authcid, passwd with
            | Some _, Some "", Some _ -> fail "PLAIN: the authentication identity is empty (RFC 4616 §2)"
            | Some _, Some _, Some "" -> fail "PLAIN: the password is empty (RFC 4616 §2)"
            | Some authzid, Some authcid, Some passwd ->
                // Acting as another user (proxy authorization) is not offered: the authorization
                // identity must be absent or the authentication identity itself.
                if authzid <> "" && authzid <> authcid then
                    fail "PLAIN: authorization as another user is not permitted"
                else
                    checkPassword context authcid passwd
            | _ -> fail "PLAIN: the message is not UTF-8 (RFC 4616 §2)"
        | _ -> fail "PLAIN: the message is not authzid NUL authcid NUL passwd (RFC 4616 §2)"

    // --- LOGIN (draft-murchison-sasl-login-00) ---

    let private usernamePrompt = "Username:"B
    let private passwordPrompt = "Password:"B

    /// The password answers "Password:"; an unknown user is asked for it all the same, so the
    /// exchange does not tell which accounts exist.
    let private loginPassword (context: SaslContext) (user: byte[]) (password: byte[]) =
        match utf8 user, utf8 password with
        | Some "", _ -> fail "LOGIN: the user name is empty"
        | Some user, Some password -> checkPassword context user password
        | _ -> fail "LOGIN: the user name or password is not UTF-8"

    // --- CRAM-MD5 (RFC 2195) ---

    /// "&lt;" random "@" host "&gt;": the msg-id form RFC 2195 §2 asks of the challenge.
    let private cramChallenge (context: SaslContext) =
        Encoding.ASCII.GetBytes("<" + context.Nonce + "@" + context.Hostname + ">")

    let private hexValue (c: char) =
        if c >= '0' && c <= '9' then int c - int '0'
        elif c >= 'a' && c <= 'f' then int c - int 'a' + 10
        elif c >= 'A' && c <= 'F' then int c - int 'A' + 10
        else -1

    /// Exactly 32 hex digits, either case, as 16 octets (RFC 2195 §2: the digest is 16 octets
    /// written as lowercase hex; uppercase is accepted, as servers do).
    let private md5Hex (text: string) =
        if text.Length <> 32 || text |> Seq.exists (fun c -> hexValue c < 0) then
            None
        else
            Some(Array.init 16 (fun i -> byte (hexValue text[2 * i] * 16 + hexValue text[2 * i + 1])))

    /// The response is the user name, a space and the digest; the user name may hold spaces, so the
    /// digest is what follows the last one.
    let private cramResponse (context: SaslContext) (challenge: byte[]) (response: byte[]) =
        match utf8 response with
        | None -> fail "CRAM-MD5: the response is not UTF-8"
        | Some text ->
            let space = text.LastIndexOf ' '

            if space <= 0 then
                fail "CRAM-MD5: the response is not user SP digest (RFC 2195 §2)"
            else
                let user = text[.. space - 1]

                match md5Hex text[space + 1 ..] with
                | None -> fail "CRAM-MD5: the digest is not 32 hex digits (RFC 2195 §2)"
                | Some digest ->
                    match context.LookupPassword user with
                    | Some password ->
                        // The key is the password as it is stored: RFC 2195 prepares nothing.
                        let expected = HMACMD5.HashData(bytesOf password, challenge)

                        if CryptographicOperations.FixedTimeEquals(ReadOnlySpan expected, ReadOnlySpan digest) then
                            SaslServerStep.Succeeded user
                        else
                            fail rejected
                    | None -> fail rejected

    // --- SCRAM (RFC 5802, RFC 7677) ---

    let private hashLength =
        function
        | Sha1 -> 20
        | Sha256 -> 32

    let private hmac hash (key: byte[]) (data: byte[]) =
        match hash with
        | Sha1 -> HMACSHA1.HashData(key, data)
        | Sha256 -> HMACSHA256.HashData(key, data)

    let private digest hash (data: byte[]) =
        match hash with
        | Sha1 -> SHA1.HashData data
        | Sha256 -> SHA256.HashData data

    /// Hi(str, salt, i) of RFC 5802 §2.2 is PBKDF2 (RFC 2898) with HMAC as the PRF and one block.
    let private hi hash (password: byte[]) (salt: byte[]) (iterations: int) =
        let name =
            match hash with
            | Sha1 -> HashAlgorithmName.SHA1
            | Sha256 -> HashAlgorithmName.SHA256

        Rfc2898DeriveBytes.Pbkdf2(password, salt, iterations, name, hashLength hash)

    /// printable = %x21-2B / %x2D-7E (RFC 5802 §7): what a nonce is made of.
    let private isPrintable (c: char) = c >= '!' && c <= '~' && c <> ','

    /// saslname (RFC 5802 §7): "=2C" stands for ',' and "=3D" for '='; any other '=' is an error
    /// (§5.1: "the server MUST fail the authentication"). NUL is not a value-safe-char.
    let private decodeSaslName (text: string) =
        let builder = StringBuilder()
        let mutable index = 0
        let mutable valid = text.Length > 0

        while valid && index < text.Length do
            match text[index] with
            | '=' when index + 2 < text.Length ->
                match text.Substring(index + 1, 2).ToUpperInvariant() with
                | "2C" ->
                    builder.Append ',' |> ignore
                    index <- index + 3
                | "3D" ->
                    builder.Append '=' |> ignore
                    index <- index + 3
                | _ -> valid <- false
            | '='
            | '\000' -> valid <- false
            | c ->
                builder.Append c |> ignore
                index <- index + 1

        if valid then Some(builder.ToString()) else None

    /// attr-val (RFC 5802 §7): one ASCII letter, '=' and the value.
    let private isAttribute (part: string) =
        part.Length >= 2 && Char.IsAsciiLetter part[0] && part[1] = '='

    let private valueOf (attribute: char) (part: string) =
        if part.Length >= 2 && part[0] = attribute && part[1] = '=' then
            Some part[2..]
        else
            None

    /// Strict base64: what Convert decodes and encodes back to the same text (no whitespace, no
    /// stray bits), so a sloppy client shows up here.
    let private strictBase64 (text: string) =
        let buffer = Array.zeroCreate<byte>((text.Length + 3) / 4 * 3)
        let mutable written = 0

        if Convert.TryFromBase64String(text, Span buffer, &written) then
            let decoded = buffer[.. written - 1]

            if Convert.ToBase64String decoded = text then
                Some decoded
            else
                None
        else
            None

    let private scramName hash plus =
        let name =
            match hash with
            | Sha1 -> "SCRAM-SHA-1"
            | Sha256 -> "SCRAM-SHA-256"

        if plus then name + "-PLUS" else name

    /// The gs2-cbind-flag (RFC 5802 §6, §7): the channel-binding data c= must carry, or why the
    /// exchange fails.
    let private channelBindingFor (context: SaslContext) (name: string) (plus: bool) (flag: string) =
        match flag with
        | "n" when plus -> Error $"{name}: the client chose a -PLUS mechanism but no channel binding (RFC 5802 §6)"
        | "n" -> Ok [||]
        | "y" when plus -> Error $"{name}: the client chose a -PLUS mechanism but no channel binding (RFC 5802 §6)"
        // The client could bind but believes the server cannot, while this server offers -PLUS:
        // someone removed it from the list (RFC 5802 §6, downgrade detection).
        | "y" when context.ChannelBindingAdvertised ->
            Error $"{name}: the client supports channel binding and so does this server: a downgrade (RFC 5802 §6)"
        | "y" -> Ok [||]
        | _ when flag.StartsWith "p=" && not plus ->
            Error $"{name}: channel binding requested with a mechanism without -PLUS (RFC 5802 §6)"
        | _ when flag.StartsWith "p=" ->
            match flag.Substring 2, context.ChannelBinding with
            | ChannelBindingType, Some data -> Ok data
            | ChannelBindingType, None -> Error $"{name}: no channel binding without TLS (RFC 5802 §6)"
            | _ -> Error $"{name}: unsupported channel binding type; only {ChannelBindingType} (RFC 5929 §4)"
        | _ -> Error $"{name}: the gs2-cbind-flag is not n, y or p= (RFC 5802 §7)"

    /// client-first-message (RFC 5802 §7) and server-first-message in return.
    let private scramClientFirst (context: SaslContext) hash plus (message: byte[]) =
        let name = scramName hash plus

        let bad (what: string) = fail $"{name}: {what} (RFC 5802 §7)"

        if
            String.IsNullOrEmpty context.Nonce
            || context.Nonce |> Seq.exists (isPrintable >> not)
        then
            fail $"{name}: the server nonce is not printable ASCII; the server is misconfigured"
        elif context.ScramIterations < 1 then
            fail $"{name}: the iteration count is not positive; the server is misconfigured"
        else
            match utf8 message with
            | None -> bad "client-first-message is not UTF-8"
            | Some text ->
                let parts = text.Split ','

                // gs2-header = gs2-cbind-flag "," [ authzid ] ","
                match channelBindingFor context name plus parts[0] with
                | _ when parts.Length < 4 -> bad "client-first-message is not gs2-header, n= and r="
                | Error reason -> fail reason
                | Ok bindingData ->
                    let authzid =
                        if parts[1] = "" then
                            Some None
                        else
                            valueOf 'a' parts[1] |> Option.bind decodeSaslName |> Option.map Some

                    let gs2Header = parts[0] + "," + parts[1] + ","
                    let bare = String.Join(",", parts[2..])

                    match authzid with
                    | None -> bad "the authzid is not a=saslname"
                    | Some authzid ->
                        if parts[2].StartsWith "m=" then
                            // RFC 5802 §5.1: "m" is reserved; its presence must fail the exchange.
                            fail $"{name}: mandatory extensions (m=) are not supported (RFC 5802 §5.1)"
                        else
                            let user = valueOf 'n' parts[2] |> Option.bind decodeSaslName
                            let clientNonce = valueOf 'r' parts[3]

                            match user, clientNonce with
                            | None, _ -> bad "the user name is not n=saslname"
                            | _, None -> bad "the nonce is not r=..."
                            | Some _, Some nonce when nonce = "" || nonce |> Seq.exists (isPrintable >> not) ->
                                bad "the client nonce is empty or not printable"
                            | Some _, Some _ when parts[4..] |> Array.exists (isAttribute >> not) ->
                                bad "an extension is not attr=value"
                            | Some user, Some _ when authzid.IsSome && authzid <> Some user ->
                                fail $"{name}: authorization as another user is not permitted"
                            | Some user, Some clientNonce ->
                                // An unknown user gets a server-first-message like anyone else (same salt
                                // and count), so this step does not tell which accounts exist.
                                let combined = clientNonce + context.Nonce

                                let serverFirst =
                                    $"r={combined},s={Convert.ToBase64String context.ScramSalt},i={context.ScramIterations}"

                                let pending =
                                    {
                                        Hash = hash
                                        Plus = plus
                                        User = user
                                        Gs2Header = gs2Header
                                        BindingData = bindingData
                                        ClientFirstBare = bare
                                        ServerFirst = serverFirst
                                        CombinedNonce = combined
                                    }

                                SaslServerStep.Challenge(ScramAwaitingClientFinal pending, bytesOf serverFirst)

    /// Checks ClientProof (RFC 5802 §3): ClientKey = ClientProof XOR ClientSignature must hash to
    /// StoredKey. Gives ServerSignature on success.
    let private scramVerify (context: SaslContext) (pending: ScramPending) (authMessage: byte[]) (proof: byte[]) =
        let hash = pending.Hash

        match context.LookupPassword pending.User |> Option.bind SaslPrep.prepare with
        | None -> None
        | Some password ->
            let salted = hi hash (bytesOf password) context.ScramSalt context.ScramIterations
            let storedKey = digest hash (hmac hash salted "Client Key"B)
            let clientSignature = hmac hash storedKey authMessage
            let clientKey = Array.map2 (^^^) proof clientSignature

            if CryptographicOperations.FixedTimeEquals(ReadOnlySpan(digest hash clientKey), ReadOnlySpan storedKey) then
                let serverKey = hmac hash salted "Server Key"B
                Some(hmac hash serverKey authMessage)
            else
                None

    /// client-final-message (RFC 5802 §7): c=, r=, extensions, p= last. On a good proof the
    /// server-final-message goes out as a challenge (RFC 5034 §4: additional data with success).
    let private scramClientFinal (context: SaslContext) (pending: ScramPending) (message: byte[]) =
        let bad (what: string) =
            fail $"{scramName pending.Hash pending.Plus}: {what} (RFC 5802 §7)"

        match utf8 message with
        | None -> bad "client-final-message is not UTF-8"
        | Some text ->
            let parts = text.Split ','

            if parts.Length < 3 then
                bad "client-final-message is not c=, r= and p="
            else
                let channelBinding = valueOf 'c' parts[0]
                let nonce = valueOf 'r' parts[1]
                let proof = valueOf 'p' parts[parts.Length - 1] |> Option.bind strictBase64
                let withoutProof = String.Join(",", parts[.. parts.Length - 2])

                // c= is base64(gs2-header + channel-binding data): "biws" for "n,," (RFC 5802 §7,
                // cbind-input); with -PLUS the data proves both ends see the same TLS channel.
                let expected =
                    Convert.ToBase64String(Array.append (bytesOf pending.Gs2Header) pending.BindingData)

                if channelBinding <> Some expected then
                    if pending.Plus then
                        bad "c= does not carry the gs2-header and this connection's channel binding"
                    else
                        bad "c= does not repeat the gs2-header"
                elif nonce <> Some pending.CombinedNonce then
                    bad "r= is not the nonce of server-first-message"
                elif parts[2 .. parts.Length - 2] |> Array.exists (isAttribute >> not) then
                    bad "an extension is not attr=value"
                else
                    match proof with
                    | Some proof when proof.Length = hashLength pending.Hash ->
                        let authMessage =
                            bytesOf (pending.ClientFirstBare + "," + pending.ServerFirst + "," + withoutProof)

                        match scramVerify context pending authMessage proof with
                        | Some serverSignature ->
                            let serverFinal = "v=" + Convert.ToBase64String serverSignature
                            SaslServerStep.Challenge(ScramAwaitingAck pending.User, bytesOf serverFinal)
                        | None -> fail rejected
                    | _ -> bad "p= is not the base64 of a proof as long as the hash"

    let private scramHashOf =
        function
        | "SCRAM-SHA-1" -> Some(Sha1, false)
        | "SCRAM-SHA-256" -> Some(Sha256, false)
        | "SCRAM-SHA-1-PLUS" -> Some(Sha1, true)
        | "SCRAM-SHA-256-PLUS" -> Some(Sha256, true)
        | _ -> None

    // --- OAuth 2.0 bearer tokens (RFC 6750) for XOAUTH2 and OAUTHBEARER (RFC 7628) ---

    /// b64token (RFC 6750 §2.1): 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
    let private isB64Token (token: string) =
        let body = token.TrimEnd '='

        body.Length > 0
        && body |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || "-._~+/".Contains c)

    /// "Bearer" SP token (RFC 6750 §2.1; the scheme is case-insensitive, RFC 7235 §2.1).
    let private bearerToken (credentials: string) =
        if
            credentials.Length > 7
            && credentials.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
        then
            let token = credentials.Substring 7

            if isB64Token token then Some token else None
        else
            None

    /// True when the account holds this token. Every stored token is compared, each through its
    /// SHA-256 (equal lengths), in constant time: the time tells neither which token nor how much
    /// of it matched.
    let private tokenMatches (context: SaslContext) (user: string) (token: string) =
        let presented = SHA256.HashData(bytesOf token)
        let mutable matched = false

        for stored in context.LookupTokens user do
            let stored = SHA256.HashData(bytesOf stored)

            if CryptographicOperations.FixedTimeEquals(ReadOnlySpan stored, ReadOnlySpan presented) then
                matched <- true

        matched

    /// The error challenge of XOAUTH2: base64 JSON as Gmail sends it (developers.google.com/gmail/
    /// imap/xoauth2-protocol, "Error response"); the client answers with an empty line.
    let XOAuth2ErrorJson =
        """{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"""

    /// The error challenge of OAUTHBEARER (RFC 7628 §3.2.2: status, optional scope); the client
    /// answers %x01.
    let OAuthBearerErrorJson =
        """{"status":"invalid_token","schemes":"bearer","scope":"https://mail.google.com/"}"""

    /// user= {user} ^A auth=Bearer {token} ^A ^A (Google's XOAUTH2 protocol page, "Initial
    /// client response"; Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth"),
    /// strictly: these two pairs in this order and nothing else.
    let private xoauth2Message (context: SaslContext) (message: byte[]) =
        let bad (what: string) = fail $"XOAUTH2: {what}"

        match utf8 message with
        | None -> bad "the message is not UTF-8"
        | Some text ->
            let parts = text.Split '\001'

            if parts.Length <> 4 || parts[2] <> "" || parts[3] <> "" then
                bad "the message is not user=...^Aauth=Bearer ...^A^A"
            elif not (parts[0].StartsWith "user=") || parts[0].Length = 5 then
                bad "the first pair is not user= and a name"
            elif not (parts[1].StartsWith "auth=") then
                bad "the second pair is not auth="
            else
                let user = parts[0].Substring 5

                match bearerToken (parts[1].Substring 5) with
                | None -> bad "auth= is not \"Bearer\" and a token (RFC 6750 §2.1)"
                | Some token when tokenMatches context user token -> SaslServerStep.Succeeded user
                // A bad token or an unknown user: the error challenge, which the client must
                // answer with an empty line before the -ERR.
                | Some _ -> SaslServerStep.Challenge(XOAuth2AwaitingErrorAck, bytesOf XOAuth2ErrorJson)

    /// key = 1*ALPHA (RFC 7628 §3.1).
    let private isKey (key: string) =
        key.Length > 0 && key |> Seq.forall Char.IsAsciiLetter

    /// value = *(VCHAR / SP / HTAB / CR / LF) (RFC 7628 §3.1).
    let private isValue (value: string) =
        value
        |> Seq.forall (fun c -> (c >= '!' && c <= '~') || c = ' ' || c = '\t' || c = '\r' || c = '\n')

    /// client-resp = gs2-header kvsep *kvpair kvsep, kvsep = %x01, kvpair = key "=" value kvsep
    /// (RFC 7628 §3.1). auth is required; host and port are accepted; other keys are ignored.
    let private oauthBearerMessage (context: SaslContext) (message: byte[]) =
        let bad (what: string) =
            fail $"OAUTHBEARER: {what} (RFC 7628 §3.1)"

        match utf8 message with
        | None -> bad "the message is not UTF-8"
        | Some text ->
            let first = text.IndexOf ','
            let second = if first < 0 then -1 else text.IndexOf(',', first + 1)

            if second < 0 then
                bad "the message does not start with a gs2-header"
            else
                let flag = text.Substring(0, first)
                let authzid = text.Substring(first + 1, second - first - 1)
                let rest = text.Substring(second + 1)

                let user =
                    if authzid = "" then
                        Ok None
                    else
                        match valueOf 'a' authzid |> Option.bind decodeSaslName with
                        | Some user -> Ok(Some user)
                        | None -> Error "the authzid is not a=saslname"

                let pairs =
                    if rest.Length >= 2 && rest.StartsWith '\001' && rest.EndsWith "\001\001" then
                        let inner = rest.Substring(1, rest.Length - 2)
                        let items = inner.Split '\001'
                        // inner ends with the kvsep of its last pair, so the last item is empty.
                        items[.. items.Length - 2]
                        |> Array.map (fun item ->
                            let equals = item.IndexOf '='

                            if equals > 0 then
                                Some(item.Substring(0, equals), item.Substring(equals + 1))
                            else
                                None)
                        |> Some
                    else
                        None

                match flag, user, pairs with
                | f, _, _ when f.StartsWith "p=" ->
                    fail "OAUTHBEARER: channel binding is not supported by this mechanism (RFC 7628 §3.1)"
                | f, _, _ when f <> "n" && f <> "y" -> bad "the gs2-cbind-flag is not n or y"
                | _, Error what, _ -> bad what
                | _, _, None -> bad "the key/value pairs are not framed by %x01"
                | _, _, Some pairs when pairs |> Array.exists Option.isNone -> bad "a pair is not key=value"
                | _, Ok user, Some pairs ->
                    let pairs = pairs |> Array.choose id
                    let keys = pairs |> Array.map fst

                    if keys |> Array.exists (isKey >> not) then
                        bad "a key is not letters"
                    elif pairs |> Array.exists (snd >> isValue >> not) then
                        bad "a value holds a control character"
                    elif (keys |> Array.distinct).Length <> keys.Length then
                        bad "a key appears twice"
                    elif
                        pairs
                        |> Array.exists (fun (k, v) ->
                            k = "port" && (v = "" || not (v |> Seq.forall Char.IsAsciiDigit)))
                    then
                        bad "port= is not a number"
                    else
                        match pairs |> Array.tryFind (fun (k, _) -> k = "auth") |> Option.map snd, user with
                        | None, _ -> bad "auth= is missing"
                        // The account is named by the authzid, as Gmail's clients send it; the
                        // simulator does not look accounts up by token.
                        | Some _, None -> fail "OAUTHBEARER: the simulator needs the authzid (a=) to find the account"
                        | Some credentials, Some user ->
                            match bearerToken credentials with
                            | None -> bad "auth= is not \"Bearer\" and a token"
                            | Some token when tokenMatches context user token -> SaslServerStep.Succeeded user
                            | Some _ ->
                                SaslServerStep.Challenge(OAuthBearerAwaitingErrorAck, bytesOf OAuthBearerErrorJson)

    /// One more challenge of an exchange that never ends (the SaslEndlessChallenges fault).
    let internal stall (round: int) =
        SaslServerStep.Challenge(Stalling round, bytesOf $"round {round}; more to come")

    /// The user an exchange will authenticate once the client acknowledges server-final-message
    /// (SCRAM's v=), when state is that last step; None otherwise. Fault plans use it to leave out
    /// or falsify the server signature.
    let internal awaitingFinalAck (state: SaslServerState) =
        match state with
        | ScramAwaitingAck user -> Some user
        | _ -> None

    /// server-final-message with a falsified signature: v= with its first bit flipped.
    let internal tamperServerFinal (serverFinal: byte[]) =
        match utf8 serverFinal with
        | Some text when text.StartsWith "v=" ->
            match strictBase64 (text.Substring 2) with
            | Some signature when signature.Length > 0 ->
                signature[0] <- signature[0] ^^^ 1uy
                bytesOf ("v=" + Convert.ToBase64String signature)
            | _ -> serverFinal
        | _ -> serverFinal

    /// Starts an exchange. mechanism is compared case-insensitively; initialResponse is the decoded
    /// RFC 5034 initial response (Some [||] for "="). An unknown mechanism gives Error with a message.
    let start
        (context: SaslContext)
        (mechanism: string)
        (initialResponse: byte[] option)
        : Result<SaslServerStep, string> =
        let name =
            if isNull mechanism then
                ""
            else
                mechanism.ToUpperInvariant()

        match name, initialResponse with
        // RFC 4422 §5: a client-first mechanism without an initial response gets an empty challenge.
        | "PLAIN", None -> Ok(SaslServerStep.Challenge(PlainAwaitingMessage, [||]))
        | "PLAIN", Some message -> Ok(plainMessage context message)
        | "LOGIN", None -> Ok(SaslServerStep.Challenge(LoginAwaitingUser, usernamePrompt))
        | "LOGIN", Some user -> Ok(SaslServerStep.Challenge(LoginAwaitingPassword user, passwordPrompt))
        | "CRAM-MD5", None ->
            let challenge = cramChallenge context
            Ok(SaslServerStep.Challenge(CramAwaitingDigest challenge, challenge))
        // The server speaks first in CRAM-MD5 (RFC 2195 §2): an initial response is a protocol error
        // (RFC 4422 §3.3).
        | "CRAM-MD5", Some _ -> Ok(fail "CRAM-MD5: the server speaks first; an initial response is not allowed")
        // Microsoft's two-line form: AUTH XOAUTH2, an empty challenge, then the message.
        | "XOAUTH2", None -> Ok(SaslServerStep.Challenge(XOAuth2AwaitingMessage, [||]))
        | "XOAUTH2", Some message -> Ok(xoauth2Message context message)
        | "OAUTHBEARER", None -> Ok(SaslServerStep.Challenge(OAuthBearerAwaitingMessage, [||]))
        | "OAUTHBEARER", Some message -> Ok(oauthBearerMessage context message)
        | _ ->
            match scramHashOf name, initialResponse with
            | Some(hash, plus), None -> Ok(SaslServerStep.Challenge(ScramAwaitingClientFirst(hash, plus), [||]))
            | Some(hash, plus), Some message -> Ok(scramClientFirst context hash plus message)
            | None, _ -> Error $"unknown SASL mechanism: {mechanism}"

    /// Continues with the client's decoded response line.
    let respond (context: SaslContext) (state: SaslServerState) (response: byte[]) : SaslServerStep =
        match state with
        | PlainAwaitingMessage -> plainMessage context response
        | LoginAwaitingUser -> SaslServerStep.Challenge(LoginAwaitingPassword response, passwordPrompt)
        | LoginAwaitingPassword user -> loginPassword context user response
        | CramAwaitingDigest challenge -> cramResponse context challenge response
        | ScramAwaitingClientFirst(hash, plus) -> scramClientFirst context hash plus response
        | ScramAwaitingClientFinal pending -> scramClientFinal context pending response
        // RFC 5802 §5: the exchange ends with the client's check of server-final-message; its
        // answer carries nothing (RFC 5034 §4).
        | ScramAwaitingAck user when response.Length = 0 -> SaslServerStep.Succeeded user
        | ScramAwaitingAck _ -> fail "SCRAM: the answer to server-final-message must be empty (RFC 5034 §4)"
        | XOAuth2AwaitingMessage -> xoauth2Message context response
        | XOAuth2AwaitingErrorAck when response.Length = 0 -> fail rejected
        | XOAuth2AwaitingErrorAck -> fail "XOAUTH2: the answer to the error challenge must be empty"
        | OAuthBearerAwaitingMessage -> oauthBearerMessage context response
        // RFC 7628 §3.2.2: the client answers the error with a lone %x01, then the server fails.
        | OAuthBearerAwaitingErrorAck when response = [| 1uy |] -> fail rejected
        | OAuthBearerAwaitingErrorAck ->
            fail "OAUTHBEARER: the answer to the error challenge must be %x01 (RFC 7628 §3.2.2)"
        | Stalling round -> stall (round + 1)
