import DINOP
import PromoEvents
import PromoFeatures

/// What an input event changes of its item, already as the model's vectors.
enum ItemInput {
    case profile(sii: [String?], sis: [Float], su: [Float])
    case day(Int, buyers: Bool, values: [Float])
    case activity(id: String, act: [Float])
}

/// Why a message is a dead letter instead of an input.
struct ApplyError: Error, CustomStringConvertible {
    let description: String
    var cause = DeadLetterCause.invalidEvent
}

/// Input messages → item inputs → changed item states: the event decoding and the field → vector mapping of the
/// stream, in one place, and the rules for what an input changes (a duplicate changes nothing; a corrected day
/// or a new buyer profile needs a recomputation).
final class InputApplier {
    let decoder: EventDecoder
    let mapper: FeatureMapper
    let nDis: Int, nU: Int
    /// Per `Vocabulary.sales` name its position in the model's `dis` vector, per buyer bucket in `du`.
    private let salesSlots: [Int?], bucketSlots: [Int?]

    init(config: ModelConfig, presaleDays: Int) {
        decoder = EventDecoder(presaleDays: presaleDays)
        mapper = FeatureMapper(config: config)
        nDis = config.count(.dis)
        nU = config.count(.du)
        salesSlots = mapper.positions(.dis, of: Vocabulary.sales.map(\.0))
        bucketSlots = mapper.positions(.du, of: Vocabulary.buyerBuckets)
    }

    /// A new item's empty state, sized for the model.
    func newState(_ key: ItemKey) -> ItemState {
        ItemState(key: key, siiCount: mapper.config.siiFields.count, nSis: mapper.config.count(.sis), nU: nU)
    }

    /// The item a message changes and how; nil for a message that is not an input (an outcome: a label, read by
    /// the backtest and the fine-tuner). The key must equal the item id: it places the item's state in its
    /// partition, and a mismatch would split it across partitions.
    func input(_ message: InputMessage) throws(ApplyError) -> (ItemKey, ItemInput)? {
        guard let (itemKey, input) = try decode(message.value) else { return nil }
        guard let key = message.key, key.elementsEqual(itemKey.itemID.utf8) else {
            throw ApplyError(description: "key: must equal item_id \(quoted(itemKey.itemID)), got \(message.key.map { quoted($0) } ?? "none")",
                             cause: .wrongKey)
        }
        return (itemKey, input)
    }

    /// The daily events, most of the input, are read without a JSON tree when they are in their common form.
    func decode(_ value: [UInt8]) throws(ApplyError) -> (ItemKey, ItemInput)? {
        if let daily = decoder.decodeDaily(value) {
            let (slots, count) = daily.part == .sales ? (salesSlots, nDis) : (bucketSlots, nU)
            var values = [Float](repeating: .nan, count: count)
            for (value, slot) in zip(daily.values, slots) where !value.isNaN {
                if let slot { values[slot] = Float(value) }
            }
            return (ItemKey(promotionID: daily.promotionID, itemID: daily.itemID),
                    .day(daily.day, buyers: daily.part == .buyers, values: values))
        }
        let event: Event
        do { event = try decoder.decode(value) } catch { throw ApplyError(description: "\(error)") }
        switch event {
        case .profile(let e):
            let input = ItemInput.profile(sii: mapper.siiIDs(e.ids), sis: mapper.vector(.sis, e.sis),
                                          su: mapper.vector(.su, e.su ?? [:]))
            return (ItemKey(promotionID: e.promotionID, itemID: e.itemID), input)
        case .sales(let e):
            return (ItemKey(promotionID: e.promotionID, itemID: e.itemID),
                    .day(e.day, buyers: false, values: mapper.vector(.dis, e.sales)))
        case .buyers(let e):
            return (ItemKey(promotionID: e.promotionID, itemID: e.itemID),
                    .day(e.day, buyers: true, values: mapper.vector(.du, e.buyers)))
        case .activity(let e):
            return (ItemKey(promotionID: e.promotionID, itemID: e.itemID),
                    .activity(id: e.activityID, act: mapper.vector(.act, e.features)))
        case .outcome: return nil
        default: throw ApplyError(description: "schema: \(event.schema) is not an input event", cause: .notAnInput)
        }
    }

    /// What applying an input did to its item.
    struct Applied {
        /// The stored model state no longer matches the inputs (a corrected day, a new buyer profile).
        var recompute: Bool
        /// The profile or the activity changed: the prediction changes even without a new day.
        var statics: Bool
        /// When the item started waiting for a day's buyers, if this input started that wait.
        var startedWaiting: Int64?
    }

    /// Changes the item's inputs; nil when they stay as they were (a duplicate).
    func apply(_ input: ItemInput, to state: inout ItemState, nowMs: Int64) -> Applied? {
        var recompute = false, changed = false, statics = false
        switch input {
        case .profile(let sii, let sis, let su):
            changed = !state.hasProfile || sii != state.sii || !sameBits(sis, state.sis) || !sameBits(su, state.su)
            // su steers the attention of every day already applied.
            recompute = !sameBits(su, state.su)
            statics = true
            (state.hasProfile, state.sii, state.sis, state.su) = (true, sii, sis, su)
        case .day(let day, let buyers, let values):
            let applied = state.hot?.appliedDays.contains(UInt16(day)) ?? false
            changed = state.store(day: day, buyers: buyers, values: values, nDis: nDis, nU: nU)
            recompute = changed && applied
        case .activity(let id, let act):
            changed = state.activityID != id || state.act.map { !sameBits($0, act) } ?? true
            statics = true
            (state.activityID, state.act) = (id, act)
        }
        guard changed else { return nil }
        let waitingSince = state.pendingSince
        state.updatePending(nowMs: nowMs)
        let started = state.pendingSince.flatMap { $0 != waitingSince ? $0 : nil }
        return Applied(recompute: recompute, statics: statics, startedWaiting: started)
    }
}

extension ItemState {
    /// The day waiting for its buyers: the latest sales day, when it has none.
    var pendingDay: Int? {
        guard let last = dayFlags.lastIndex(where: { $0 & DayFlags.sales != 0 }),
              dayFlags[last] & DayFlags.buyers == 0 else { return nil }
        return Int(dayNumbers[last])
    }

    /// Starts the grace clock when the latest sales day lacks its buyers; stops it when they come.
    mutating func updatePending(nowMs: Int64) {
        guard let day = pendingDay else {
            pendingSince = nil
            waitingDay = nil
            return
        }
        if waitingDay != day {
            waitingDay = day
            pendingSince = nowMs
        }
    }
}
