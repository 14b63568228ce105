//! Synthetic patients for demos and benchmarks. Their names are made up from
//! two short lists; the CLI never prints them.

use docket_shared::{Settings, db::Db};

const FIRST: [&str; 12] =
    ["Ada", "Björn", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gustavo", "Hana", "Ivo", "Jolene", "Kofi", "Lucía"];
const LAST: [&str; 10] =
    ["Okafor", "Lindqvist", "Moreau", "Petrov", "Kim", "Haddad", "Silva", "Sato", "Novak", "Brennan"];

pub fn demo_id(i: u32) -> String {
    format!("DEMO-{i:05}")
}

pub async fn demo(settings: &Settings, n: u32) -> anyhow::Result<()> {
    let db = Db::connect_lazy(&settings.database_url, 2)?;
    db.migrate().await?;
    let ids: Vec<String> = (1..=n).map(demo_id).collect();
    let firsts: Vec<&str> = (1..=n).map(|i| FIRST[(i as usize * 7) % FIRST.len()]).collect();
    let lasts: Vec<String> = (1..=n).map(|i| format!("{}-{i}", LAST[(i as usize * 3) % LAST.len()])).collect();
    let added = sqlx::query(
        "INSERT INTO patients (patient_id, first_name, last_name)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
         ON CONFLICT (patient_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&firsts)
    .bind(&lasts)
    .execute(&db.pool)
    .await?
    .rows_affected();
    let range = if n > 0 { format!(" ({}..{})", demo_id(1), demo_id(n)) } else { String::new() };
    println!("seeded {added} new demo patients of {n}{range}");
    Ok(())
}
