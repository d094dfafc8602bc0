//! Region → login/API hosts (reference §1), plus an override for the simulator.

use url::Url;

use super::GenesysError;

/// SDK region key and domain, from the official SDKs' `PureCloudRegionHosts`.
pub const REGIONS: [(&str, &str); 18] = [
    ("us_east_1", "mypurecloud.com"),
    ("eu_west_1", "mypurecloud.ie"),
    ("ap_southeast_2", "mypurecloud.com.au"),
    ("ap_northeast_1", "mypurecloud.jp"),
    ("eu_central_1", "mypurecloud.de"),
    ("us_west_2", "usw2.pure.cloud"),
    ("ca_central_1", "cac1.pure.cloud"),
    ("ap_northeast_2", "apne2.pure.cloud"),
    ("eu_west_2", "euw2.pure.cloud"),
    ("ap_south_1", "aps1.pure.cloud"),
    ("us_east_2", "use2.us-gov-pure.cloud"),
    ("sa_east_1", "sae1.pure.cloud"),
    ("me_central_1", "mec1.pure.cloud"),
    ("ap_northeast_3", "apne3.pure.cloud"),
    ("eu_central_2", "euc2.pure.cloud"),
    ("mx_central_1", "mxc1.pure.cloud"),
    ("ap_southeast_1", "apse1.pure.cloud"),
    ("eusc_de_east_1", "edee1.eusc-pure.cloud"),
];

/// Where tokens and API calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesysHosts {
    pub login_base: Url,
    pub api_base: Url,
}

impl GenesysHosts {
    /// Accepts an SDK region key (`eu_west_1`, also `eu-west-1`) or a domain (`mypurecloud.ie`).
    pub fn for_region(region: &str) -> Result<Self, GenesysError> {
        let wanted = region.trim().to_ascii_lowercase().replace('-', "_");
        let domain = REGIONS
            .iter()
            .find(|(key, domain)| *key == wanted || domain.replace('-', "_") == wanted)
            .map(|(_, domain)| *domain)
            .ok_or_else(|| GenesysError::Config {
                field: "region",
                message: format!("unknown Genesys Cloud region {region:?}"),
            })?;
        Ok(Self {
            login_base: parse_base("region", &format!("https://login.{domain}"))?,
            api_base: parse_base("region", &format!("https://api.{domain}"))?,
        })
    }

    /// One base URL serving both login and API paths, as the simulator does.
    pub fn single_base(base_url: &str) -> Result<Self, GenesysError> {
        let base = parse_base("apiBaseUrl", base_url)?;
        Ok(Self {
            login_base: base.clone(),
            api_base: base,
        })
    }

    pub fn api_url(&self, path: &str) -> String {
        join(&self.api_base, path)
    }

    pub fn token_url(&self) -> String {
        join(&self.login_base, "/oauth/token")
    }
}

fn parse_base(field: &'static str, raw: &str) -> Result<Url, GenesysError> {
    let url = Url::parse(raw.trim()).map_err(|e| GenesysError::Config {
        field,
        message: format!("{raw:?} is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(GenesysError::Config {
            field,
            message: format!("{raw:?} must be http(s)"),
        });
    }
    Ok(url)
}

fn join(base: &Url, path: &str) -> String {
    format!("{}{}", base.as_str().trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_key_and_domain_resolve_to_login_and_api_hosts() {
        let by_key = GenesysHosts::for_region("eu_west_1").expect("known region");
        assert_eq!(
            by_key.token_url(),
            "https://login.mypurecloud.ie/oauth/token"
        );
        assert_eq!(
            by_key.api_url("/api/v2/x"),
            "https://api.mypurecloud.ie/api/v2/x"
        );
        assert_eq!(
            GenesysHosts::for_region("mypurecloud.ie").expect("domain"),
            by_key
        );
        assert_eq!(
            GenesysHosts::for_region("EU-WEST-1").expect("dashes"),
            by_key
        );
        let gov = GenesysHosts::for_region("us_east_2").expect("FedRAMP region");
        assert_eq!(gov.api_base.as_str(), "https://api.use2.us-gov-pure.cloud/");
    }

    #[test]
    fn unknown_region_names_the_field() {
        let error = GenesysHosts::for_region("api.us.genesys.cloud").expect_err("not a region");
        assert!(error.to_string().contains("region"), "{error}");
    }

    #[test]
    fn single_base_serves_login_and_api() {
        let hosts = GenesysHosts::single_base("http://127.0.0.1:9999/").expect("valid");
        assert_eq!(hosts.token_url(), "http://127.0.0.1:9999/oauth/token");
        assert_eq!(
            hosts.api_url("/api/v2/users"),
            "http://127.0.0.1:9999/api/v2/users"
        );
    }
}
