//! The texts of the mails an applicant receives, in their language.
//!
//! Mails carry no personal data beyond the address they are sent to: no name, no
//! document number. Plain text, short lines, the code alone on its own line.

use crate::domain::identity::Language;

/// The subject and body of the mail that carries a verification code.
pub fn verification_code(
    language: Language,
    code: &str,
    site: &str,
    procedure: &str,
    valid_minutes: i64,
) -> (String, String) {
    match language {
        Language::Fr => (
            "Votre code de vérification".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Voici votre code pour confirmer votre inscription au tirage au sort des\n\
                 rendez-vous (site {site}, démarche {procedure}) :\n\
                 \n\
                 \x20   {code}\n\
                 \n\
                 Il est valable {valid_minutes} minutes. Saisissez-le sur la page de\n\
                 votre inscription. Sans cette confirmation, votre inscription ne\n\
                 participera pas au tirage.\n\
                 \n\
                 Si vous n'avez pas demandé ce code, ignorez ce message.\n\
                 \n\
                 Ce message est envoyé automatiquement, merci de ne pas y répondre.\n"
            ),
        ),
        Language::En => (
            "Your verification code".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 Here is your code to confirm your registration for the appointment\n\
                 lottery (site {site}, procedure {procedure}):\n\
                 \n\
                 \x20   {code}\n\
                 \n\
                 It is valid for {valid_minutes} minutes. Enter it on the page of your\n\
                 registration. Without this confirmation, your registration will not\n\
                 take part in the draw.\n\
                 \n\
                 If you did not ask for this code, ignore this message.\n\
                 \n\
                 This message is sent automatically, please do not reply.\n"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_stands_on_its_own_line() {
        for language in [Language::Fr, Language::En] {
            let (_, body) = verification_code(language, "042137", "34", "renewal", 30);
            assert!(body.lines().any(|line| line.trim() == "042137"), "{body}");
            assert!(body.contains("30 minutes"));
            assert!(
                body.lines().all(|line| line.chars().count() <= 72),
                "{body}"
            );
        }
    }
}
