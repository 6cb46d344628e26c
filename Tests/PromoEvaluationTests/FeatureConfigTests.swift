import DINOP
import Foundation
import PromoEvents
import PromoFeatures
import Testing

@Suite("Feature config: own features, from event to model")
struct FeatureConfigTests {
    func file(_ json: String) throws(ModelError) -> ConfigFile { try ConfigFile(bytes: Array(json.utf8)) }

    @Test("a config file replaces the groups it names, keeps the rest, and inherits log1p for names still present")
    func partialConfig() throws {
        let config = try file("""
            {"sii_fields": ["market", "industry", "category"], "hidden": 8,
             "features": {"sis": ["price", "units_90d", "sale_count"], "dis": ["gmv", "price"]},
             "log1p": {"sis": ["sale_count", "units_90d"]}}
            """).applied(to: .default)
        #expect(config.siiFields == ["market", "industry", "category"] && config.hidden == 8)
        #expect(config.attention == ModelConfig.default.attention)
        #expect(config.names(.sis) == ["price", "units_90d", "sale_count"])
        #expect(config.log1pNames(.sis) == ["sale_count", "units_90d"])
        #expect(config.log1pNames(.dis) == ["gmv"])  // inherited: the default's log1p names still in the group
        #expect(config.names(.du) == ModelConfig.buyerBuckets)
    }

    @Test("a config file sets MARKETS.md's competition sizes; each key keeps the default when absent")
    func competitionSizes() throws {
        let config = try file(#"{"extensions": ["competition"], "competition": {"width": 12, "cooperation": false}}"#)
            .applied(to: .default)
        #expect(config.competition == CompetitionSizes(width: 12, cooperation: false))
        let widthOnly = try file(#"{"extensions": ["competition"], "competition": {"width": 5}}"#).applied(to: .default)
        #expect(widthOnly.competition == CompetitionSizes(width: 5, cooperation: true))
    }

    @Test("a typo is refused by name, never trained on the defaults", arguments: [
        (#"{"feature": {}}"#, "unknown key \"feature\""),
        (#"{"features": {"dys": ["gmv"]}}"#, "features.dys: unknown group"),
        (#"{"log1p": {"sis": ["gmv"]}}"#, "log1p.sis names \"gmv\""),
        (#"{"sii_fields": "brand"}"#, "sii_fields must be a list of strings"),
        (#"{"hidden": 1.5}"#, "hidden must be an integer"),
        (#"[1]"#, "must hold a JSON object"),
        (#"{"competition": {"widht": 8}}"#, "competition has an unknown key \"widht\""),
        (#"{"competition": {"cooperation": 1}}"#, "competition.cooperation must be true or false"),
    ])
    func refusals(json: String, expected: String) {
        do throws(ModelError) {
            _ = try file(json).applied(to: .default)
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test("an unknown top-level string of a profile is a categorical id: decoded, re-encoded, and embedded")
    func categoryEndToEnd() throws {
        let line = #"{"schema":"item_profile/1","item_id":"i","promotion_id":"p","brand":"b","category":"serum","stock":7,"sis":{"price":20,"sale_count":300}}"#
        guard case .profile(let profile) = try EventDecoder().decode(Array(line.utf8)) else {
            Issue.record("not a profile"); return
        }
        #expect(profile.ids == ["brand": "b", "category": "serum"])  // a number at the top level is not an id
        #expect(profile.sis == ["price": 20, "sale_count": 300])
        #expect(try EventDecoder().decode(Event.profile(profile).encoded()) == .profile(profile))

        let config = try file(#"{"sii_fields": ["brand", "category"], "features": {"sis": ["price", "sale_count"]}}"#)
            .applied(to: .default)
        let model = try DINOPModel.random(config: config, dims: .defaults(for: config, rows: 1009, encoderWidth: 8, headHidden: 8), seed: 2)
        func record(_ category: String?) -> ItemRecord {
            var p = profile
            p.ids["category"] = category
            var r = ItemRecord(key: ItemKey(promotionID: "p", itemID: "i"))
            r.apply(.profile(p))
            r.apply(.sales(DailySales(itemID: "i", promotionID: "p", day: 1, sales: ["gmv": 40, "price": 20])))
            return r
        }
        let pipeline = FeaturePipeline(config: config)
        let serum = pipeline.predictions(model, for: [record("serum")])[0]
        let toner = pipeline.predictions(model, for: [record("toner")])[0]
        #expect(pipeline.raw(record("serum")).sii == ["b", "serum"])
        #expect(serum.bsp != toner.bsp, "the category must reach the model")  // a random model's GMV clamps to 0

        let missing = FeatureCoverage.unsupplied(config, in: [record(nil)])
        #expect(missing.contains("category") && !missing.contains("brand"))
        #expect(missing.contains("dis.units") && !missing.contains("dis.gmv") && !missing.contains("sis.sale_count"))
    }
}
