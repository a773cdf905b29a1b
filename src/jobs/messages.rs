//! The texts of the mails an applicant receives, in their language.
//!
//! Mails carry no personal data beyond the address they are sent to: no name, no
//! document number. Plain text, short lines, the code alone on its own line.

use chrono::{DateTime, Datelike, Utc};

use crate::domain::identity::Language;
use crate::domain::slots::TimeZone;

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
        Language::Ar => (
            "رمز التأكيد الخاص بك".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 إليك الرمز الذي يؤكد تسجيلك في قرعة المواعيد:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 \n\
                 \x20   {code}\n\
                 \n\
                 هذا الرمز صالح لمدة {valid_minutes} دقيقة. أدخله في صفحة تسجيلك.\n\
                 بدون هذا التأكيد، لن يشارك تسجيلك في القرعة.\n\
                 \n\
                 إذا لم تطلب هذا الرمز، فتجاهل هذه الرسالة.\n\
                 \n\
                 {FOOTER_AR}"
            ),
        ),
    }
}

/// A time as people in metropolitan France read it, in the mail's language:
/// `lundi 4 janvier 2027 à 09:30 (heure de Paris)`,
/// `Monday 4 January 2027 at 09:30 (Paris time)`,
/// `الاثنين 4 يناير 2027، الساعة 09:30 (بتوقيت باريس)`.
pub fn local_time(language: Language, at: DateTime<Utc>) -> String {
    const JOURS: [&str; 7] = [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ];
    const MOIS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    // Monday first, as `num_days_from_monday` counts.
    const AYYAM: [&str; 7] = [
        "الاثنين",
        "الثلاثاء",
        "الأربعاء",
        "الخميس",
        "الجمعة",
        "السبت",
        "الأحد",
    ];
    const ASHHUR: [&str; 12] = [
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "مايو",
        "يونيو",
        "يوليو",
        "أغسطس",
        "سبتمبر",
        "أكتوبر",
        "نوفمبر",
        "ديسمبر",
    ];
    let local = TimeZone::EuropeParis.to_local(at);
    let day = local.weekday().num_days_from_monday() as usize;
    let month = local.month0() as usize;
    match language {
        Language::Fr => format!(
            "{} {} {} {} à {} (heure de Paris)",
            JOURS[day],
            local.day(),
            MOIS[month],
            local.year(),
            local.format("%H:%M")
        ),
        Language::En => format!(
            "{} {} {} {} at {} (Paris time)",
            local.format("%A"),
            local.day(),
            local.format("%B"),
            local.year(),
            local.format("%H:%M")
        ),
        Language::Ar => format!(
            "{} {} {} {}، الساعة {} (بتوقيت باريس)",
            AYYAM[day],
            local.day(),
            ASHHUR[month],
            local.year(),
            local.format("%H:%M")
        ),
    }
}

const FOOTER_FR: &str = "Ce message est envoyé automatiquement, merci de ne pas y répondre.\n";
const FOOTER_EN: &str = "This message is sent automatically, please do not reply.\n";
const FOOTER_AR: &str = "هذه رسالة آلية، يُرجى عدم الرد عليها.\n";

/// The mail sent after the draw to an entry that got a slot.
pub fn result_selected(
    language: Language,
    site: &str,
    procedure: &str,
    entry_id: &str,
    starts_at: DateTime<Utc>,
    counter: &str,
) -> (String, String) {
    let when = local_time(language, starts_at);
    match language {
        Language::Fr => (
            "Tirage au sort : vous avez un rendez-vous".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Le tirage au sort des rendez-vous a eu lieu (site {site},\n\
                 démarche {procedure}). Votre inscription a été tirée au sort :\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 Votre rendez-vous :\n\
                 \n\
                 \x20   {when}\n\
                 \x20   guichet {counter}\n\
                 \n\
                 Imprimez votre convocation à votre nom depuis la page de votre\n\
                 inscription (avec votre code d'accès), ou à l'adresse :\n\
                 \n\
                 \x20   /api/v1/entries/{entry_id}/convocation.html\n\
                 \n\
                 Présentez-la au guichet avec votre pièce d'identité. Le\n\
                 rendez-vous est à votre nom : il ne peut être ni cédé ni vendu.\n\
                 \n\
                 Si vous ne pouvez pas venir, annulez-le : il sera proposé à la\n\
                 personne suivante sur la liste d'attente.\n\
                 \n\
                 {FOOTER_FR}"
            ),
        ),
        Language::En => (
            "Appointment lottery: you have an appointment".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 The appointment lottery has taken place (site {site},\n\
                 procedure {procedure}). Your registration was drawn:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 Your appointment:\n\
                 \n\
                 \x20   {when}\n\
                 \x20   counter {counter}\n\
                 \n\
                 Print your convocation, in your name, from the page of your\n\
                 registration (with your access code), or at:\n\
                 \n\
                 \x20   /api/v1/entries/{entry_id}/convocation.html\n\
                 \n\
                 Bring it to the counter with your identity document. The\n\
                 appointment is in your name: it cannot be given or sold.\n\
                 \n\
                 If you cannot come, cancel it: it will be offered to the next\n\
                 person on the waiting list.\n\
                 \n\
                 {FOOTER_EN}"
            ),
        ),
        Language::Ar => (
            "قرعة المواعيد: حصلت على موعد".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 أُجريت قرعة المواعيد:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 \n\
                 وقد فاز تسجيلك في القرعة:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 موعدك:\n\
                 \n\
                 \x20   {when}\n\
                 \x20   الشباك {counter}\n\
                 \n\
                 اطبع استدعاءك الذي يحمل اسمك من صفحة تسجيلك (باستعمال رمز\n\
                 الدخول)، أو من هذا العنوان:\n\
                 \n\
                 \x20   /api/v1/entries/{entry_id}/convocation.html\n\
                 \n\
                 قدّمه عند الشباك مع وثيقة هويتك. الموعد باسمك: لا يمكن\n\
                 التنازل عنه ولا بيعه.\n\
                 \n\
                 إذا لم تستطع الحضور، فألغِ الموعد: سيُعرض على الشخص التالي في\n\
                 قائمة الانتظار.\n\
                 \n\
                 {FOOTER_AR}"
            ),
        ),
    }
}

/// The mail sent after the draw to an entry on the waiting list.
pub fn result_waiting(
    language: Language,
    site: &str,
    procedure: &str,
    entry_id: &str,
    position: i64,
) -> (String, String) {
    match language {
        Language::Fr => (
            "Tirage au sort : vous êtes sur la liste d'attente".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Le tirage au sort des rendez-vous a eu lieu (site {site},\n\
                 démarche {procedure}). Votre inscription n'a pas obtenu de\n\
                 rendez-vous :\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 Elle est sur la liste d'attente, en position :\n\
                 \n\
                 \x20   {position}\n\
                 \n\
                 Quand un rendez-vous est annulé, il est proposé dans l'ordre de la\n\
                 liste d'attente. Vous recevrez alors un message, avec un délai pour\n\
                 l'accepter.\n\
                 \n\
                 {FOOTER_FR}"
            ),
        ),
        Language::En => (
            "Appointment lottery: you are on the waiting list".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 The appointment lottery has taken place (site {site},\n\
                 procedure {procedure}). Your registration did not get an\n\
                 appointment:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 It is on the waiting list, at position:\n\
                 \n\
                 \x20   {position}\n\
                 \n\
                 When an appointment is cancelled, it is offered in the order of\n\
                 the waiting list. You will then get a message, with a deadline to\n\
                 accept it.\n\
                 \n\
                 {FOOTER_EN}"
            ),
        ),
        Language::Ar => (
            "قرعة المواعيد: أنت في قائمة الانتظار".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 أُجريت قرعة المواعيد:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 \n\
                 لم يحصل تسجيلك على موعد:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 وهو في قائمة الانتظار، في المرتبة:\n\
                 \n\
                 \x20   {position}\n\
                 \n\
                 عندما يُلغى موعد، يُعرض حسب ترتيب قائمة الانتظار. وستصلك\n\
                 حينها رسالة، مع مهلة لقبوله.\n\
                 \n\
                 {FOOTER_AR}"
            ),
        ),
    }
}

/// The mail sent after the draw to an entry left out for want of verification.
pub fn result_excluded(
    language: Language,
    site: &str,
    procedure: &str,
    entry_id: &str,
    closed_at: Option<DateTime<Utc>>,
) -> (String, String) {
    let closed = closed_at.map(|at| local_time(language, at));
    match language {
        Language::Fr => (
            "Tirage au sort : votre inscription n'a pas participé".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Le tirage au sort des rendez-vous a eu lieu (site {site},\n\
                 démarche {procedure}). Votre inscription n'y a pas participé :\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 Votre adresse e-mail n'a pas été confirmée avec le code reçu avant\n\
                 la fin des inscriptions{}.\n\
                 \n\
                 Vous pourrez vous inscrire au prochain tirage : pensez à saisir le\n\
                 code reçu par e-mail. Vous pouvez aussi vous inscrire au guichet de\n\
                 la préfecture.\n\
                 \n\
                 {FOOTER_FR}",
                closed.map(|c| format!(",\nle {c}")).unwrap_or_default()
            ),
        ),
        Language::En => (
            "Appointment lottery: your registration was not in the draw".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 The appointment lottery has taken place (site {site},\n\
                 procedure {procedure}). Your registration was not in the draw:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 Your e-mail address was not confirmed with the code you received\n\
                 before registration closed{}.\n\
                 \n\
                 You can register for the next draw: remember to enter the code\n\
                 sent by e-mail. You can also register at the counter of the\n\
                 préfecture.\n\
                 \n\
                 {FOOTER_EN}",
                closed.map(|c| format!(",\non {c}")).unwrap_or_default()
            ),
        ),
        Language::Ar => (
            "قرعة المواعيد: لم يشارك تسجيلك في القرعة".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 أُجريت قرعة المواعيد:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 \n\
                 لم يشارك تسجيلك فيها:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 لم يتم تأكيد بريدك الإلكتروني بالرمز الذي وصلك قبل نهاية\n\
                 التسجيل{}.\n\
                 \n\
                 يمكنك التسجيل في القرعة القادمة: لا تنسَ إدخال الرمز الذي يصلك\n\
                 بالبريد الإلكتروني. ويمكنك أيضًا التسجيل عند شباك المحافظة.\n\
                 \n\
                 {FOOTER_AR}",
                closed.map(|c| format!("،\nيوم {c}")).unwrap_or_default()
            ),
        ),
    }
}

/// The mail offering a freed slot to the next entry on the waiting list.
pub fn slot_offer(
    language: Language,
    site: &str,
    procedure: &str,
    entry_id: &str,
    starts_at: DateTime<Utc>,
    counter: &str,
    expires_at: DateTime<Utc>,
) -> (String, String) {
    let when = local_time(language, starts_at);
    let deadline = local_time(language, expires_at);
    match language {
        Language::Fr => (
            "Un rendez-vous vous est proposé".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Un rendez-vous a été annulé (site {site}, démarche {procedure}).\n\
                 Il vous est proposé, car vous êtes le premier sur la liste\n\
                 d'attente :\n\
                 \n\
                 \x20   {when}\n\
                 \x20   guichet {counter}\n\
                 \n\
                 Pour l'accepter, répondez avant le :\n\
                 \n\
                 \x20   {deadline}\n\
                 \n\
                 sur la page de votre inscription (avec votre code d'accès), ou par\n\
                 une requête avec votre code d'accès :\n\
                 \n\
                 \x20   POST /api/v1/entries/{entry_id}/offer/accept\n\
                 \n\
                 (ou .../offer/decline pour le refuser). Sans réponse à temps, le\n\
                 rendez-vous est proposé à la personne suivante et vous quittez la\n\
                 liste d'attente.\n\
                 \n\
                 {FOOTER_FR}"
            ),
        ),
        Language::En => (
            "An appointment is offered to you".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 An appointment was cancelled (site {site}, procedure {procedure}).\n\
                 It is offered to you, as you are first on the waiting list:\n\
                 \n\
                 \x20   {when}\n\
                 \x20   counter {counter}\n\
                 \n\
                 To accept it, answer before:\n\
                 \n\
                 \x20   {deadline}\n\
                 \n\
                 on the page of your registration (with your access code), or with\n\
                 a request carrying your access code:\n\
                 \n\
                 \x20   POST /api/v1/entries/{entry_id}/offer/accept\n\
                 \n\
                 (or .../offer/decline to refuse it). Without an answer in time,\n\
                 the appointment goes to the next person and you leave the waiting\n\
                 list.\n\
                 \n\
                 {FOOTER_EN}"
            ),
        ),
        Language::Ar => (
            "يُقترح عليك موعد".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 أُلغي موعد:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 \n\
                 وهو مقترح عليك لأنك الأول في قائمة الانتظار:\n\
                 \n\
                 \x20   {when}\n\
                 \x20   الشباك {counter}\n\
                 \n\
                 لقبوله، أجب قبل:\n\
                 \n\
                 \x20   {deadline}\n\
                 \n\
                 في صفحة تسجيلك (باستعمال رمز الدخول)، أو بطلب يحمل رمز\n\
                 الدخول:\n\
                 \n\
                 \x20   POST /api/v1/entries/{entry_id}/offer/accept\n\
                 \n\
                 ولرفضه:\n\
                 \n\
                 \x20   POST /api/v1/entries/{entry_id}/offer/decline\n\
                 \n\
                 إذا لم تُجب في الوقت المحدد، يُعرض الموعد على الشخص التالي\n\
                 وتخرج من قائمة الانتظار.\n\
                 \n\
                 {FOOTER_AR}"
            ),
        ),
    }
}

/// The confirmation of a cancellation: of an appointment (`slot`: its time and
/// counter), or of a place on the waiting list.
pub fn cancellation(
    language: Language,
    site: &str,
    procedure: &str,
    entry_id: &str,
    slot: Option<(DateTime<Utc>, &str)>,
) -> (String, String) {
    match (language, slot) {
        (Language::Fr, Some((starts_at, counter))) => (
            "Votre rendez-vous est annulé".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Votre rendez-vous est annulé (site {site}, démarche {procedure},\n\
                 inscription {entry_id}) :\n\
                 \n\
                 \x20   {}\n\
                 \x20   guichet {counter}\n\
                 \n\
                 Il sera proposé à la personne suivante sur la liste d'attente. Votre\n\
                 convocation n'est plus valable.\n\
                 \n\
                 {FOOTER_FR}",
                local_time(language, starts_at)
            ),
        ),
        (Language::En, Some((starts_at, counter))) => (
            "Your appointment is cancelled".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 Your appointment is cancelled (site {site}, procedure {procedure},\n\
                 registration {entry_id}):\n\
                 \n\
                 \x20   {}\n\
                 \x20   counter {counter}\n\
                 \n\
                 It will be offered to the next person on the waiting list. Your\n\
                 convocation is no longer valid.\n\
                 \n\
                 {FOOTER_EN}",
                local_time(language, starts_at)
            ),
        ),
        (Language::Ar, Some((starts_at, counter))) => (
            "تم إلغاء موعدك".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 تم إلغاء موعدك:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 رقم التسجيل:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 الموعد الملغى:\n\
                 \n\
                 \x20   {}\n\
                 \x20   الشباك {counter}\n\
                 \n\
                 سيُعرض على الشخص التالي في قائمة الانتظار. لم يعد استدعاؤك\n\
                 صالحًا.\n\
                 \n\
                 {FOOTER_AR}",
                local_time(language, starts_at)
            ),
        ),
        (Language::Fr, None) => (
            "Vous avez quitté la liste d'attente".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Vous avez quitté la liste d'attente du tirage au sort des\n\
                 rendez-vous (site {site}, démarche {procedure}) :\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 Aucun rendez-vous ne vous sera plus proposé pour ce tirage.\n\
                 \n\
                 {FOOTER_FR}"
            ),
        ),
        (Language::En, None) => (
            "You have left the waiting list".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 You have left the waiting list of the appointment lottery\n\
                 (site {site}, procedure {procedure}):\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 No appointment will be offered to you for this lottery any more.\n\
                 \n\
                 {FOOTER_EN}"
            ),
        ),
        (Language::Ar, None) => (
            "خرجت من قائمة الانتظار".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 لقد خرجت من قائمة الانتظار في قرعة المواعيد:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 لن يُعرض عليك أي موعد بعد الآن في هذه القرعة.\n\
                 \n\
                 {FOOTER_AR}"
            ),
        ),
    }
}

/// The subject and body of the mail that asks an applicant drawn without a slot to
/// confirm their carried entry in the next window.
pub fn carry_over(
    language: Language,
    code: &str,
    entry_id: &str,
    site: &str,
    procedure: &str,
    confirm_before: DateTime<Utc>,
    unsuccessful_draws: i64,
) -> (String, String) {
    let until = local_time(language, confirm_before);
    match language {
        Language::Fr => (
            "Votre inscription au prochain tirage".to_owned(),
            format!(
                "Bonjour,\n\
                 \n\
                 Le tirage précédent ne vous a pas attribué de rendez-vous. Votre\n\
                 inscription est reportée au prochain tirage (site {site}, démarche\n\
                 {procedure}), avec un bonus : c'est votre tirage perdu n° {unsuccessful_draws}.\n\
                 \n\
                 Votre nouveau numéro d'inscription : {entry_id}\n\
                 Votre code d'accès reste le même.\n\
                 \n\
                 Pour participer, confirmez avec ce code avant le {until} :\n\
                 \n\
                 \x20   {code}\n\
                 \n\
                 Sans confirmation, cette inscription ne participera pas au tirage.\n\
                 Si vous n'avez plus besoin de rendez-vous, ignorez ce message.\n\
                 \n\
                 Ce message est envoyé automatiquement, merci de ne pas y répondre.\n"
            ),
        ),
        Language::En => (
            "Your registration for the next draw".to_owned(),
            format!(
                "Hello,\n\
                 \n\
                 The last draw did not give you an appointment. Your registration is\n\
                 carried into the next draw (site {site}, procedure {procedure}), with a\n\
                 bonus: this counts as your lost draw number {unsuccessful_draws}.\n\
                 \n\
                 Your new entry id: {entry_id}\n\
                 Your access code stays the same.\n\
                 \n\
                 To take part, confirm with this code before {until}:\n\
                 \n\
                 \x20   {code}\n\
                 \n\
                 Without confirmation, this entry will not take part in the draw.\n\
                 If you no longer need an appointment, ignore this message.\n\
                 \n\
                 This message is sent automatically, please do not reply.\n"
            ),
        ),
        Language::Ar => (
            "تسجيلك في القرعة القادمة".to_owned(),
            format!(
                "مرحبًا،\n\
                 \n\
                 لم تمنحك القرعة السابقة موعدًا. لذلك نُقل تسجيلك إلى القرعة\n\
                 القادمة:\n\
                 الموقع: {site}\n\
                 الإجراء: {procedure}\n\
                 \n\
                 ولك فيها أفضلية: هذه هي القرعة رقم {unsuccessful_draws} التي لم تحصل\n\
                 فيها على موعد.\n\
                 \n\
                 رقم تسجيلك الجديد:\n\
                 \n\
                 \x20   {entry_id}\n\
                 \n\
                 رمز الدخول الخاص بك لم يتغير.\n\
                 \n\
                 للمشاركة، أكّد تسجيلك بهذا الرمز:\n\
                 \n\
                 \x20   {code}\n\
                 \n\
                 آخر أجل للتأكيد:\n\
                 \n\
                 \x20   {until}\n\
                 \n\
                 بدون تأكيد، لن يشارك هذا التسجيل في القرعة.\n\
                 إذا لم تعد بحاجة إلى موعد، فتجاهل هذه الرسالة.\n\
                 \n\
                 {FOOTER_AR}"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_stands_on_its_own_line() {
        for language in Language::ALL {
            let (_, body) = verification_code(language, "042137", "34", "renewal", 30);
            assert!(body.lines().any(|line| line.trim() == "042137"), "{body}");
            assert!(body.contains("30 minutes") || body.contains("30 دقيقة"));
            assert!(body.contains("34") && body.contains("renewal"), "{body}");
            assert!(
                body.lines().all(|line| line.chars().count() <= 72),
                "{body}"
            );
        }
    }

    #[test]
    fn local_times_are_written_for_people() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(
            local_time(Language::Fr, at("2027-01-04T08:30:00Z")),
            "lundi 4 janvier 2027 à 09:30 (heure de Paris)"
        );
        assert_eq!(
            local_time(Language::En, at("2027-08-15T08:30:00Z")),
            "Sunday 15 August 2027 at 10:30 (Paris time)"
        );
        assert_eq!(
            local_time(Language::Ar, at("2027-01-04T08:30:00Z")),
            "الاثنين 4 يناير 2027، الساعة 09:30 (بتوقيت باريس)"
        );
        // Summer time, and the last day of the week and month names.
        assert_eq!(
            local_time(Language::Ar, at("2027-08-15T08:30:00Z")),
            "الأحد 15 أغسطس 2027، الساعة 10:30 (بتوقيت باريس)"
        );
        assert_eq!(
            local_time(Language::Ar, at("2027-12-31T22:59:00Z")),
            "الجمعة 31 ديسمبر 2027، الساعة 23:59 (بتوقيت باريس)"
        );
    }

    /// Arabic letters, or one of the marks Arabic text uses.
    fn is_arabic(c: char) -> bool {
        ('\u{0600}'..='\u{06FF}').contains(&c)
    }

    #[test]
    fn arabic_mails_are_written_in_arabic_and_keep_their_facts_apart() {
        let entry = "3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910";
        let at = DateTime::parse_from_rfc3339("2027-01-04T08:30:00Z")
            .unwrap()
            .to_utc();
        let date = "الاثنين 4 يناير 2027، الساعة 09:30 (بتوقيت باريس)";
        let mails = [
            verification_code(Language::Ar, "042137", "34", "renewal", 30),
            result_selected(Language::Ar, "34", "renewal", entry, at, "G1"),
            result_waiting(Language::Ar, "34", "renewal", entry, 7),
            result_excluded(Language::Ar, "34", "renewal", entry, Some(at)),
            result_excluded(Language::Ar, "34", "renewal", entry, None),
            slot_offer(Language::Ar, "34", "renewal", entry, at, "G1", at),
            cancellation(Language::Ar, "34", "renewal", entry, Some((at, "G1"))),
            cancellation(Language::Ar, "34", "renewal", entry, None),
            carry_over(Language::Ar, "042137", entry, "34", "renewal", at, 2),
        ];
        for (subject, body) in &mails {
            // Written in Arabic, not a French or English text left over.
            assert!(subject.chars().any(is_arabic), "{subject}");
            assert!(body.starts_with("مرحبًا،\n"), "{body}");
            assert!(body.ends_with(&format!("\n\n{FOOTER_AR}")), "{body}");
            for word in ["Hello", "Bonjour", "the ", "le ", "votre"] {
                assert!(!body.contains(word), "{word} in {body}");
            }
            // The site and procedure are each on their own labelled line.
            assert!(body.lines().any(|l| l == "الموقع: 34"), "{body}");
            assert!(body.lines().any(|l| l == "الإجراء: renewal"), "{body}");
            assert!(
                body.lines().all(|line| line.chars().count() <= 72),
                "{body}"
            );
        }
        // Codes, entry ids, dates and links alone on their line, left to right.
        let alone = |body: &str, fact: &str| body.lines().any(|l| l.trim() == fact);
        for (i, (_, body)) in mails.iter().enumerate().skip(1) {
            // The offer carries its entry id in the two requests that answer it.
            assert!(alone(body, entry) || i == 5, "{body}");
            assert!(body.contains(entry), "{body}");
        }
        let [
            code,
            selected,
            waiting,
            excluded,
            excluded_no_date,
            offer,
            cancelled,
            left,
            carried,
        ] = &mails;
        assert!(alone(&code.1, "042137") && code.1.contains("30 دقيقة"));
        assert!(alone(&selected.1, date) && alone(&selected.1, "الشباك G1"));
        assert!(alone(
            &selected.1,
            &format!("/api/v1/entries/{entry}/convocation.html")
        ));
        assert!(alone(&waiting.1, "7"), "{}", waiting.1);
        assert!(
            excluded.1.contains(&format!("يوم {date}.")),
            "{}",
            excluded.1
        );
        assert!(
            !excluded_no_date.1.contains("يوم"),
            "{}",
            excluded_no_date.1
        );
        assert!(alone(&offer.1, date) && alone(&offer.1, "الشباك G1"));
        for action in ["accept", "decline"] {
            assert!(alone(
                &offer.1,
                &format!("POST /api/v1/entries/{entry}/offer/{action}")
            ));
        }
        assert!(alone(&cancelled.1, date) && alone(&cancelled.1, "الشباك G1"));
        assert!(left.1.contains("قائمة الانتظار"));
        assert!(alone(&carried.1, "042137") && alone(&carried.1, date));
        assert!(carried.1.contains("رقم 2 "), "{}", carried.1);
        // Every mail has its own subject.
        let mut subjects: Vec<&str> = mails.iter().map(|(s, _)| s.as_str()).collect();
        subjects.dedup();
        assert_eq!(subjects.len(), mails.len() - 1, "both exclusions share one");
    }

    #[test]
    fn slot_mails_carry_their_facts_in_short_lines() {
        let entry = "3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910";
        let at = DateTime::parse_from_rfc3339("2027-01-04T08:30:00Z")
            .unwrap()
            .to_utc();
        for language in Language::ALL {
            let mails = [
                result_selected(language, "34", "renewal", entry, at, "G1"),
                result_waiting(language, "34", "renewal", entry, 7),
                result_excluded(language, "34", "renewal", entry, Some(at)),
                slot_offer(language, "34", "renewal", entry, at, "G1", at),
                cancellation(language, "34", "renewal", entry, Some((at, "G1"))),
                cancellation(language, "34", "renewal", entry, None),
            ];
            for (subject, body) in &mails {
                assert!(!subject.is_empty());
                assert!(body.contains(entry), "{body}");
                assert!(
                    body.lines().all(|line| line.chars().count() <= 72),
                    "{body}"
                );
            }
            assert!(mails[0].1.contains("09:30") && mails[0].1.contains("G1"));
            assert!(mails[0].1.contains("/convocation.html"));
            assert!(mails[1].1.lines().any(|l| l.trim() == "7"));
            assert!(mails[3].1.contains("/offer/accept"));
        }
    }
}
