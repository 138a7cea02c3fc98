package market

import "errors"

// Sentinel errors. Validators wrap them with the detail; callers use
// errors.Is.
var (
	ErrBadOffer      = errors.New("market: malformed offer")
	ErrBadJob        = errors.New("market: malformed job")
	ErrBadBid        = errors.New("market: malformed bid")
	ErrBadPolicy     = errors.New("market: bad verification policy")
	ErrWrongKind     = errors.New("market: wrong message kind")
	ErrWrongAuthor   = errors.New("market: signer is not the named provider or renter")
	ErrOfferExpired  = errors.New("market: offer expired")
	ErrFuture        = errors.New("market: timestamp in the future")
	ErrStaleOffer    = errors.New("market: offer sequence not above the last one")
	ErrUnknownJob    = errors.New("market: bid for unknown job")
	ErrAuctionClosed = errors.New("market: bid after auction close")
	ErrAboveMax      = errors.New("market: bid above max price")
	ErrBidExpired    = errors.New("market: bid expired")
	ErrReplayed      = errors.New("market: bid replayed")
	ErrNotStaked     = errors.New("market: provider not staked")
	ErrDuplicateBid  = errors.New("market: two bids from one provider")
	ErrBookFull      = errors.New("market: order book full")
)
