namespace Pop3Functional.Core

open System

/// A way to log in to a POP3 server.
[<RequireQualifiedAccess>]
type LoginMethod =
    /// AUTH with this SASL mechanism (RFC 5034), uppercase.
    | Sasl of mechanism: string
    /// APOP (RFC 1939 §7): an MD5 digest of the greeting's timestamp and the password.
    | Apop
    /// USER then PASS (RFC 1939 §7): the password in the clear.
    | UserPass

    /// The mechanism's name, "APOP" or "USER".
    member this.Name =
        match this with
        | Sasl m -> m
        | Apop -> "APOP"
        | UserPass -> "USER"

/// What the login choice depends on; the session knows all of it once negotiation is over.
type LoginFacts =
    {
        /// False when the server answered CAPA -ERR: nothing is known of what it offers.
        CapaSupported: bool
        /// The CAPA SASL mechanisms (read again after STLS, RFC 2595 §4).
        SaslMechanisms: string list
        /// CAPA lists USER (RFC 2449 §6.2).
        UserOffered: bool
        /// TLS protects the connection.
        TlsActive: bool
        /// The type of the channel-binding data the TLS layer gave (RFC 5929, RFC 9266), for -PLUS;
        /// None when there is none. The automatic choice takes -PLUS only with a type every
        /// SCRAM-*-PLUS server must implement (ChannelBinding.IsMandatoryToImplement).
        ChannelBindingType: string option
        /// The caller allowed credentials over a connection without TLS.
        AllowPlaintextCredentials: bool
        /// The greeting had an APOP timestamp, not discarded by STLS.
        ApopAvailable: bool
    }

/// The login method to use, chosen once from what the server offers (DESIGN §12): the strongest
/// that fits, never a weaker one after a failure. Pure.
[<RequireQualifiedAccess>]
module LoginChoice =
    /// The order of preference for passwords: methods that never reveal the password first, those
    /// that send it (PLAIN, LOGIN, USER) last and only over TLS unless plaintext was allowed.
    let passwordPreference =
        [
            LoginMethod.Sasl "SCRAM-SHA-256-PLUS"
            LoginMethod.Sasl "SCRAM-SHA-1-PLUS"
            LoginMethod.Sasl "SCRAM-SHA-256"
            LoginMethod.Sasl "SCRAM-SHA-1"
            LoginMethod.Sasl "CRAM-MD5"
            LoginMethod.Apop
            LoginMethod.Sasl "PLAIN"
            LoginMethod.Sasl "LOGIN"
            LoginMethod.UserPass
        ]

    /// The order of preference for OAuth 2 tokens: the standard mechanism (RFC 7628) first.
    let oauth2Preference =
        [ LoginMethod.Sasl "OAUTHBEARER"; LoginMethod.Sasl "XOAUTH2" ]

    let private exposes (m: LoginMethod) =
        match m with
        | LoginMethod.UserPass -> true
        | LoginMethod.Apop -> false
        | LoginMethod.Sasl name -> Sasl.exposesCredential name

    let private isPlus (m: LoginMethod) = m.Name.EndsWith "-PLUS"

    let private listed (facts: LoginFacts) (name: string) =
        facts.SaslMechanisms
        |> List.exists (fun m -> String.Equals(m, name, StringComparison.OrdinalIgnoreCase))

    /// What the server is known to offer, for messages.
    let private offers (facts: LoginFacts) =
        if not facts.CapaSupported then
            "the server does not answer CAPA, so only USER/PASS and APOP can be assumed"
        else
            let parts =
                [
                    if not facts.SaslMechanisms.IsEmpty then
                        "SASL " + String.Join(" ", facts.SaslMechanisms)
                    if facts.UserOffered then
                        "USER"
                    if facts.ApopAvailable then
                        "APOP"
                ]

            match parts with
            | [] -> "the server offers no login method in CAPA"
            | _ -> "the server offers " + String.Join(", ", parts)

    /// True when the server is known (or, without CAPA, assumed) to offer the method.
    let private offered (facts: LoginFacts) (assumeWithoutCapa: bool) (m: LoginMethod) =
        match m with
        | LoginMethod.Apop -> facts.ApopAvailable
        | LoginMethod.UserPass -> facts.UserOffered || not facts.CapaSupported
        | LoginMethod.Sasl name -> listed facts name || (assumeWithoutCapa && not facts.CapaSupported)

    let private bindingAvailable (facts: LoginFacts) =
        facts.TlsActive && facts.ChannelBindingType.IsSome

    let private usable (facts: LoginFacts) (m: LoginMethod) =
        (not (isPlus m) || bindingAvailable facts)
        && (not (exposes m) || facts.TlsActive || facts.AllowPlaintextCredentials)

    /// The automatic choice must be right the first time, as nothing is retried after a failure:
    /// -PLUS only with a binding type the server must implement (tls-unique on TLS 1.2, RFC 5802 §6;
    /// tls-exporter on TLS 1.3, RFC 9266 §3). With tls-server-end-point alone (what .NET gives on
    /// TLS 1.3, having no tls-exporter) a server such as Cyrus 3.6 would refuse the exchange, so the
    /// plain SCRAM variant is taken instead (with the "n" flag, as the server offers -PLUS).
    let private usableAutomatically (facts: LoginFacts) (m: LoginMethod) =
        usable facts m
        && (not (isPlus m)
            || facts.ChannelBindingType |> Option.exists ChannelBinding.IsMandatoryToImplement)

    let private refuse kind command message = Error(Err.usage kind command message)

    let private commandOf (m: LoginMethod) =
        match m with
        | LoginMethod.Sasl _ -> "AUTH"
        | LoginMethod.Apop -> "APOP"
        | LoginMethod.UserPass -> "USER"

    let private automatic (facts: LoginFacts) (kind: SaslCredentialKind) =
        let preference =
            if kind = SaslCredentialKind.OAuth2 then
                oauth2Preference
            else
                passwordPreference

        let candidates = preference |> List.filter (offered facts false)

        match candidates |> List.tryFind (usableAutomatically facts) with
        | Some m -> Ok m
        | None when candidates |> List.exists exposes ->
            let what =
                if kind = SaslCredentialKind.OAuth2 then
                    "a bearer token"
                else
                    "the password"

            refuse
                UsageErrorKind.PlaintextCredentials
                "AUTH"
                $"no login method fits: {offers facts}, and each would send {what} over a connection without TLS; use TLS or set AllowPlaintextCredentials"
        | None ->
            let known = preference |> List.map _.Name |> String.concat ", "

            refuse
                UsageErrorKind.CapabilityMissing
                "AUTH"
                $"no login method fits: {offers facts}; this client can log in with {known}"

    let private named (facts: LoginFacts) (kind: SaslCredentialKind) (name: string) =
        let upper = name.Trim().ToUpperInvariant()

        let wanted =
            match upper with
            | "USER"
            | "USER/PASS" -> LoginMethod.UserPass
            | "APOP" -> LoginMethod.Apop
            | m -> LoginMethod.Sasl m

        let command = commandOf wanted
        let forOAuth = oauth2Preference |> List.contains wanted
        let forPassword = passwordPreference |> List.contains wanted

        if not forOAuth && not forPassword then
            let known =
                (passwordPreference @ oauth2Preference) |> List.map _.Name |> String.concat ", "

            refuse
                UsageErrorKind.InvalidArgument
                command
                $"{Err.quote name} is not a login method this client implements (it knows {known})"
        elif kind = SaslCredentialKind.OAuth2 && not forOAuth then
            refuse
                UsageErrorKind.InvalidArgument
                command
                $"{upper} needs a password, and the credentials are an OAuth 2 token"
        elif kind = SaslCredentialKind.Password && not forPassword then
            refuse
                UsageErrorKind.InvalidArgument
                command
                $"{upper} needs an OAuth 2 token, and the credentials are a password"
        elif wanted = LoginMethod.Apop && not facts.ApopAvailable then
            refuse
                UsageErrorKind.ApopUnavailable
                command
                "APOP cannot be used: the greeting carried no timestamp, or STLS discarded it (RFC 2595 §4)"
        elif not (offered facts true wanted) then
            refuse UsageErrorKind.CapabilityMissing command $"the server does not offer {upper}: {offers facts}"
        elif isPlus wanted && not (bindingAvailable facts) then
            refuse
                UsageErrorKind.InvalidArgument
                command
                $"{upper} needs TLS channel-binding data (RFC 5929, RFC 9266), and the connection has none"
        elif not (usable facts wanted) then
            refuse
                UsageErrorKind.PlaintextCredentials
                command
                $"{upper} would send the credential over a connection without TLS; use TLS or set AllowPlaintextCredentials"
        else
            Ok wanted

    /// The login method for these facts and credentials: the one the caller named (None or "" for
    /// the automatic choice), checked against what the server offers, or the strongest usable one.
    /// A UsageError says what the server offers and why nothing fits.
    let choose
        (facts: LoginFacts)
        (kind: SaslCredentialKind)
        (mechanism: string option)
        : Result<LoginMethod, UsageError> =
        match mechanism with
        | Some name when not (String.IsNullOrWhiteSpace name) -> named facts kind name
        | _ -> automatic facts kind
